//! The two XML documents lifeboat reads: a ListObjectsV2 page and an error body.
//!
//! A small event walker over quick-xml instead of serde: the server is not trusted, so depth, text length and
//! entry count are bounded, unknown elements are ignored, and anything malformed is an error value (never a
//! panic). Entity and character references are resolved (keys may contain `&`).

use jiff::Timestamp;
use quick_xml::Reader;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::Event;

/// Deepest nesting accepted.
const MAX_DEPTH: usize = 16;
/// Longest text of one element (S3 keys are at most 1024 bytes; tokens and messages are short).
const MAX_TEXT: usize = 16 * 1024;
/// Most entries (objects + common prefixes) in one page (S3 returns at most 1000).
const MAX_PAGE_ENTRIES: usize = 10_000;

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    /// Full key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Last-Modified.
    pub last_modified: Option<Timestamp>,
    /// ETag without quotes.
    pub etag: Option<String>,
    /// Storage class (`STANDARD`, `GLACIER`, ...), when given.
    pub storage_class: Option<String>,
}

/// One ListObjectsV2 page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    /// Objects on this page.
    pub objects: Vec<ListedObject>,
    /// Common prefixes (with a delimiter).
    pub prefixes: Vec<String>,
    /// Whether more pages follow.
    pub truncated: bool,
    /// Token for the next page.
    pub next_token: Option<String>,
}

/// An S3 error body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorBody {
    /// `NoSuchBucket`, `AccessDenied`, ...
    pub code: String,
    /// Human text.
    pub message: String,
    /// Region the server says the bucket is in (redirects, `AuthorizationHeaderMalformed`).
    pub region: Option<String>,
}

fn walk(
    xml: &str,
    mut on_end: impl FnMut(&[String], String) -> Result<(), String>,
) -> Result<String, String> {
    let mut reader = Reader::from_str(xml);
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut root = String::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                if path.len() >= MAX_DEPTH {
                    return Err(format!("XML nested deeper than {MAX_DEPTH} levels"));
                }
                let name = e.local_name().as_ref().to_string();
                if path.is_empty() {
                    root = name.clone();
                }
                path.push(name);
                text.clear();
            }
            Ok(Event::End(_)) => {
                let t = std::mem::take(&mut text);
                on_end(&path, t)?;
                path.pop();
            }
            Ok(Event::Empty(e)) => {
                let name = e.local_name().as_ref().to_string();
                if path.is_empty() {
                    root = name.clone();
                }
                path.push(name);
                on_end(&path, String::new())?;
                path.pop();
            }
            Ok(Event::Text(t)) => push_text(&mut text, &t.xml10_content())?,
            Ok(Event::CData(t)) => push_text(&mut text, &t.xml10_content())?,
            Ok(Event::GeneralRef(r)) => {
                let resolved = if r.is_char_ref() {
                    match r.resolve_char_ref() {
                        Ok(Some(c)) => c.to_string(),
                        _ => return Err("invalid character reference in XML".to_string()),
                    }
                } else {
                    let name = r.xml10_content();
                    match resolve_predefined_entity(&name) {
                        Some(s) => s.to_string(),
                        None => return Err(format!("unknown XML entity &{name};")),
                    }
                };
                push_text(&mut text, &resolved)?;
            }
            Ok(Event::DocType(_)) => return Err("XML with a DOCTYPE is not accepted".to_string()),
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => {
                return Err(format!(
                    "malformed XML at byte {}: {e}",
                    reader.buffer_position()
                ));
            }
        }
    }
    if !path.is_empty() {
        return Err("XML ends inside an element".to_string());
    }
    Ok(root)
}

fn push_text(text: &mut String, s: &str) -> Result<(), String> {
    if text.len() + s.len() > MAX_TEXT {
        return Err(format!(
            "an XML element holds more than {MAX_TEXT} bytes of text"
        ));
    }
    text.push_str(s);
    Ok(())
}

fn strip_quotes(s: &str) -> String {
    let s = s.trim();
    let s = s.strip_prefix("W/").unwrap_or(s);
    s.trim_matches('"').to_string()
}

/// Parses a ListObjectsV2 response body.
pub fn parse_list(xml: &str) -> Result<ListPage, String> {
    let mut page = ListPage::default();
    let mut cur: Option<ListedObject> = None;
    let mut entries = 0usize;
    let root = walk(xml, |path, text| {
        let names: Vec<&str> = path.iter().map(String::as_str).collect();
        match names.as_slice() {
            ["ListBucketResult", "IsTruncated"] => page.truncated = text.trim() == "true",
            ["ListBucketResult", "NextContinuationToken"] => {
                page.next_token = Some(text.trim().to_string()).filter(|t| !t.is_empty())
            }
            ["ListBucketResult", "Contents", field] => {
                let o = cur.get_or_insert_with(|| ListedObject {
                    key: String::new(),
                    size: 0,
                    last_modified: None,
                    etag: None,
                    storage_class: None,
                });
                match *field {
                    "Key" => o.key = text,
                    "Size" => {
                        o.size = text
                            .trim()
                            .parse()
                            .map_err(|_| format!("object size {text:?} is not a number"))?
                    }
                    "LastModified" => o.last_modified = text.trim().parse().ok(),
                    "ETag" => o.etag = Some(strip_quotes(&text)).filter(|e| !e.is_empty()),
                    "StorageClass" => o.storage_class = Some(text.trim().to_string()),
                    _ => {}
                }
            }
            ["ListBucketResult", "Contents"] => {
                let o = cur.take().ok_or("an empty <Contents> element")?;
                if o.key.is_empty() {
                    return Err("a <Contents> element without a <Key>".to_string());
                }
                entries += 1;
                page.objects.push(o);
            }
            ["ListBucketResult", "CommonPrefixes", "Prefix"] => {
                entries += 1;
                page.prefixes.push(text);
            }
            _ => {}
        }
        if entries > MAX_PAGE_ENTRIES {
            return Err(format!(
                "a listing page with more than {MAX_PAGE_ENTRIES} entries"
            ));
        }
        Ok(())
    })?;
    if root != "ListBucketResult" {
        return Err(format!(
            "expected a <ListBucketResult> document, got <{root}>"
        ));
    }
    if page.truncated && page.next_token.is_none() {
        return Err("a truncated listing without a NextContinuationToken".to_string());
    }
    Ok(page)
}

/// Parses an S3 `<Error>` body; `None` when the body is not one (HEAD responses have no body).
pub fn parse_error(xml: &str) -> Option<ErrorBody> {
    let mut e = ErrorBody::default();
    let root = walk(xml, |path, text| {
        let names: Vec<&str> = path.iter().map(String::as_str).collect();
        match names.as_slice() {
            ["Error", "Code"] => e.code = text.trim().to_string(),
            ["Error", "Message"] => e.message = text.trim().chars().take(500).collect(),
            ["Error", "Region"] => e.region = Some(text.trim().to_string()),
            _ => {}
        }
        Ok(())
    })
    .ok()?;
    (root == "Error" && !e.code.is_empty()).then_some(e)
}

/// Removes the quotes (and a weak `W/` marker) around an ETag.
pub fn clean_etag(s: &str) -> String {
    strip_quotes(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_page() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>p/</Prefix>
<KeyCount>2</KeyCount><MaxKeys>2</MaxKeys><IsTruncated>true</IsTruncated>
<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>
<Contents><Key>p/a &amp; b&#x2F;c.tar</Key><LastModified>2026-11-21T02:00:00.000Z</LastModified>
<ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag><Size>434234</Size><StorageClass>STANDARD</StorageClass></Contents>
<Contents><Key><![CDATA[p/x<y]]></Key><Size>0</Size></Contents>
<CommonPrefixes><Prefix>p/2026-11-21/</Prefix></CommonPrefixes></ListBucketResult>"#;
        let p = parse_list(xml).unwrap();
        assert!(p.truncated);
        assert_eq!(
            p.next_token.as_deref(),
            Some("1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=")
        );
        assert_eq!(p.objects[0].key, "p/a & b/c.tar");
        assert_eq!(p.objects[0].size, 434234);
        assert_eq!(
            p.objects[0].etag.as_deref(),
            Some("9b2cf535f27731c974343645a3985328")
        );
        assert_eq!(
            p.objects[0].last_modified,
            Some("2026-11-21T02:00:00Z".parse().unwrap())
        );
        assert_eq!(p.objects[1].key, "p/x<y");
        assert_eq!(p.prefixes, vec!["p/2026-11-21/".to_string()]);
    }

    #[test]
    fn hostile_xml_is_an_error_not_a_panic() {
        let bad = [
            "",
            "<ListBucketResult>",
            "<ListBucketResult><Contents><Key>a</Key><Size>-1</Size></Contents></ListBucketResult>",
            "<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>",
            "<!DOCTYPE x [<!ENTITY a \"b\">]><ListBucketResult>&a;</ListBucketResult>",
            "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>",
            "<Error><Code>x</Code></Error>",
            "<ListBucketResult><Contents><Key>&#0;</Key></Contents></ListBucketResult>",
            "<a></b>",
        ];
        for b in bad {
            assert!(parse_list(b).is_err(), "{b}");
        }
        let deep = "<a>".repeat(100) + &"</a>".repeat(100);
        assert!(parse_list(&deep).is_err());
        let long = format!(
            "<ListBucketResult><Contents><Key>{}</Key></Contents></ListBucketResult>",
            "k".repeat(MAX_TEXT + 1)
        );
        assert!(parse_list(&long).is_err());
        // Arbitrary bytes never panic.
        let mut x: u64 = 7;
        for _ in 0..2000 {
            let mut s = String::new();
            for _ in 0..64 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                s.push(b"<>/&;#x\"' aKeyContents"[(x % 22) as usize] as char);
            }
            let _ = parse_list(&s);
            let _ = parse_error(&s);
        }
    }

    #[test]
    fn error_body() {
        let e = parse_error("<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message><BucketName>x</BucketName></Error>").unwrap();
        assert_eq!(e.code, "NoSuchBucket");
        assert!(parse_error("not xml").is_none());
        assert!(parse_error("").is_none());
    }
}
