//! The PBS repository string, as users already write it for `proxmox-backup-client` (PBS_REPOSITORY):
//! `[[auth-id@]server[:port]:]datastore`.
//!
//! lifeboat accepts only the full form with an API token (`user@realm!token@server[:port]:datastore`): an
//! agent that runs unattended must not hold a user's password, and a token's privileges can be limited to
//! exactly what a drill needs (pbs-protocol.md §1.2, §1.7). IPv6 addresses are written in brackets, the
//! port defaults to 8007 (§1.1). Name rules follow the upstream schemas (user, realm, token, datastore).

use std::fmt;
use std::str::FromStr;

/// PBS's API port (pbs-protocol.md §1.1).
pub const DEFAULT_PORT: u16 = 8007;

/// An API token id, `user@realm!tokenname`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AuthId {
    /// User name (`drill`).
    pub user: String,
    /// Realm (`pbs`, `pam`, ...).
    pub realm: String,
    /// Token name (`lifeboat`).
    pub token: String,
}

impl fmt::Display for AuthId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}!{}", self.user, self.realm, self.token)
    }
}

/// Where lifeboat reads from: a datastore on a PBS server, with the token to use.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repository {
    /// The API token id.
    pub auth_id: AuthId,
    /// Host name or IP address, without brackets.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Datastore name.
    pub datastore: String,
}

impl Repository {
    /// `host:port` for URLs and messages, with IPv6 addresses in brackets.
    pub fn server(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// `https://host:port`.
    pub fn base_url(&self) -> String {
        format!("https://{}", self.server())
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}:{}", self.auth_id, self.server(), self.datastore)
    }
}

/// Why a repository string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid PBS repository {input:?}: {reason}; expected `user@realm!token@server[:port]:datastore`, e.g. \
     `drill@pbs!lifeboat@pbs.example.com:8007:store1`"
)]
pub struct RepositoryError {
    /// The rejected text, cut to 200 characters (it holds no secret).
    pub input: String,
    /// What was wrong.
    pub reason: String,
}

impl FromStr for Repository {
    type Err = RepositoryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let fail = |reason: String| RepositoryError {
            input: s.chars().take(200).collect(),
            reason,
        };
        let s_trim = s.trim();
        if s_trim.is_empty() {
            return Err(fail("it is empty".into()));
        }
        // The datastore name cannot contain ':', so the last ':' ends the server part.
        let Some((head, datastore)) = s_trim.rsplit_once(':') else {
            return Err(fail(
                "no server: lifeboat talks to a PBS server and needs `server:datastore`".into(),
            ));
        };
        check_safe_id(datastore, "datastore name").map_err(fail)?;
        // Neither host nor token contains '@', so the last '@' ends the auth-id (user names may contain '@').
        let Some((auth, server)) = head.rsplit_once('@') else {
            return Err(fail(
                "no API token: lifeboat needs a token id `user@realm!token@` before the server"
                    .into(),
            ));
        };
        let auth_id = parse_auth_id(auth).map_err(fail)?;
        let (host, port) = parse_server(server).map_err(fail)?;
        Ok(Repository {
            auth_id,
            host,
            port,
            datastore: datastore.to_string(),
        })
    }
}

impl FromStr for AuthId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_auth_id(s)
    }
}

fn parse_auth_id(auth: &str) -> Result<AuthId, String> {
    let Some((userid, token)) = auth.rsplit_once('!') else {
        return Err(format!(
            "{auth:?} is a user, not an API token: lifeboat needs a token id `user@realm!tokenname` \
             (create one with `proxmox-backup-manager user generate-token`)"
        ));
    };
    let Some((user, realm)) = userid.rsplit_once('@') else {
        return Err(format!(
            "token id {auth:?} has no realm: expected `user@realm!tokenname`"
        ));
    };
    // User names: no whitespace, ':', '/' or control characters (upstream PROXMOX_USER_NAME_REGEX).
    if user.is_empty()
        || user.len() > 64
        || user
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == ':' || c == '/')
    {
        return Err(format!(
            "user name {user:?} in token id {auth:?} is not valid"
        ));
    }
    // Realms: [A-Za-z][A-Za-z0-9.\-_]+ (2..=32).
    let realm_ok = (2..=32).contains(&realm.len())
        && realm.starts_with(|c: char| c.is_ascii_alphabetic())
        && realm
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if !realm_ok {
        return Err(format!("realm {realm:?} in token id {auth:?} is not valid"));
    }
    check_safe_id(token, "token name")?;
    Ok(AuthId {
        user: user.to_string(),
        realm: realm.to_string(),
        token: token.to_string(),
    })
}

/// Upstream's SAFE_ID: `[A-Za-z0-9_][A-Za-z0-9._\-]*` (datastore and token names).
fn check_safe_id(s: &str, what: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} {s:?} is not valid (letters, digits, `_`, `.` and `-`, not starting with `.` or `-`)"
        ))
    }
}

fn parse_server(server: &str) -> Result<(String, u16), String> {
    if server.is_empty() {
        return Err("the server is empty".into());
    }
    let (host, port) = if let Some(rest) = server.strip_prefix('[') {
        let Some((addr, after)) = rest.split_once(']') else {
            return Err(format!("{server:?}: missing `]` after the IPv6 address"));
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("{addr:?} is not an IPv6 address"));
        }
        let port =
            match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| {
                    format!("{server:?}: expected `:port` after the IPv6 address")
                })?),
            };
        (addr, port)
    } else {
        match server.split_once(':') {
            Some((_, p)) if p.contains(':') => {
                return Err(format!(
                    "{server:?} looks like an IPv6 address: write it in brackets, e.g. `[{server}]`"
                ));
            }
            Some((h, p)) => (h, Some(p)),
            None => (server, None),
        }
    };
    if !host.contains(':') {
        let ok = !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !ok {
            return Err(format!("{host:?} is not a host name or IP address"));
        }
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => return Err(format!("port {p:?} is not a number from 1 to 65535")),
        },
    };
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(s: &str) -> Repository {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn reason(s: &str) -> String {
        s.parse::<Repository>().unwrap_err().to_string()
    }

    #[test]
    fn parses_all_forms() {
        let r = repo("drill@pbs!lifeboat@pbs.example.com:8007:store1");
        assert_eq!(r.auth_id.to_string(), "drill@pbs!lifeboat");
        assert_eq!(
            (r.auth_id.user.as_str(), r.auth_id.realm.as_str()),
            ("drill", "pbs")
        );
        assert_eq!(r.auth_id.token, "lifeboat");
        assert_eq!(
            (r.host.as_str(), r.port, r.datastore.as_str()),
            ("pbs.example.com", 8007, "store1")
        );
        assert_eq!(r.base_url(), "https://pbs.example.com:8007");
        assert_eq!(
            r.to_string(),
            "drill@pbs!lifeboat@pbs.example.com:8007:store1"
        );

        let r = repo("drill@pbs!lifeboat@pbs:store_2");
        assert_eq!(
            (r.host.as_str(), r.port, r.datastore.as_str()),
            ("pbs", DEFAULT_PORT, "store_2")
        );

        let r = repo("root@pam!t1@10.0.0.5:8443:s");
        assert_eq!((r.host.as_str(), r.port), ("10.0.0.5", 8443));

        let r = repo("drill@pbs!lifeboat@[fd00::1]:store1");
        assert_eq!((r.host.as_str(), r.port), ("fd00::1", 8007));
        assert_eq!(r.server(), "[fd00::1]:8007");
        let r = repo("drill@pbs!lifeboat@[::1]:9000:store1");
        assert_eq!((r.host.as_str(), r.port), ("::1", 9000));
        assert_eq!(r.base_url(), "https://[::1]:9000");

        // User names may contain '@' (upstream allows it); the last '@' before the server counts.
        let r = repo("john@example.com@pbs!lb@host:ds");
        assert_eq!(r.auth_id.user, "john@example.com");
        assert_eq!(r.auth_id.realm, "pbs");
    }

    #[test]
    fn rejects_with_clear_reasons() {
        assert!(reason("").contains("empty"));
        assert!(reason("store1").contains("no server"));
        assert!(reason("pbs.example.com:store1").contains("no API token"));
        assert!(reason("root@pam@pbs:store1").contains("is a user, not an API token"));
        assert!(reason("root!tok@pbs:store1").contains("has no realm"));
        assert!(reason("a@pbs!tok@pbs:8007:").contains("datastore name \"\""));
        assert!(reason("a@pbs!tok@pbs:8007:st/ore").contains("datastore name"));
        assert!(reason("a@pbs!tok@fd00::1:store").contains("in brackets"));
        assert!(reason("a@pbs!tok@[fd00::1:store").contains("missing `]`"));
        assert!(reason("a@pbs!tok@[nothex]:store").contains("not an IPv6"));
        assert!(reason("a@pbs!tok@host:0:store").contains("port \"0\""));
        assert!(reason("a@pbs!tok@host:99999:store").contains("port"));
        assert!(reason("a@pbs!tok@host:+80:store").contains("port"));
        assert!(reason("a@pbs!tok@ho st:store").contains("not a host name"));
        assert!(reason("a@pbs!tok@:store").contains("server is empty"));
        assert!(reason("a@p!tok@host:store").contains("realm"));
        assert!(reason("a@pbs!.tok@host:store").contains("token name"));
        assert!(reason("a b@pbs!tok@host:store").contains("user name"));
        let e = "x".parse::<Repository>().unwrap_err().to_string();
        assert!(
            e.contains("drill@pbs!lifeboat@pbs.example.com:8007:store1"),
            "{e}"
        );
    }
}
