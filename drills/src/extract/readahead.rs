//! Read-ahead: run a (decompressing) reader on a second thread so decompression overlaps with parsing,
//! hashing and writing on the first. Memory stays bounded: at most `DEPTH` buffers of `CHUNK` bytes are in
//! flight, and buffers are recycled. Errors travel through the channel with their kind and message intact,
//! so failure classification (backup fault or source fault) is unchanged.

use std::io::{self, Read};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};

const CHUNK: usize = 1 << 20;
const DEPTH: usize = 4;

struct ChannelReader {
    rx: Receiver<io::Result<Vec<u8>>>,
    back: Sender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
    done: bool,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(next)) => {
                    let old = std::mem::replace(&mut self.cur, next);
                    let _ = self.back.send(old);
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => {
                    self.done = true;
                    return Ok(0);
                }
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn produce<R: Read>(mut r: R, tx: SyncSender<io::Result<Vec<u8>>>, back: Receiver<Vec<u8>>) {
    loop {
        let mut buf = back.try_recv().unwrap_or_default();
        buf.resize(CHUNK, 0);
        let mut filled = 0;
        while filled < CHUNK {
            match r.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if filled > 0 {
                        buf.truncate(filled);
                        let _ = tx.send(Ok(buf));
                    }
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        }
        if filled == 0 {
            return;
        }
        buf.truncate(filled);
        if tx.send(Ok(buf)).is_err() {
            return; // the consumer stopped
        }
    }
}

/// Runs `reader` on a helper thread and hands `consume` a reader of the same bytes.
pub fn read_ahead<R: Read + Send, T>(reader: R, consume: impl FnOnce(&mut dyn Read) -> T) -> T {
    std::thread::scope(|s| {
        let (tx, rx) = sync_channel(DEPTH);
        let (back_tx, back_rx) = channel();
        s.spawn(move || produce(reader, tx, back_rx));
        let mut cr = ChannelReader {
            rx,
            back: back_tx,
            cur: Vec::new(),
            pos: 0,
            done: false,
        };
        let out = consume(&mut cr);
        drop(cr);
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Failing(usize);
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0 == 0 {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "frame damaged"));
            }
            let n = buf.len().min(self.0).min(1000);
            buf[..n].fill(7);
            self.0 -= n;
            Ok(n)
        }
    }

    #[test]
    fn same_bytes_and_errors_pass_through() {
        let data: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
        let got = read_ahead(&data[..], |r| {
            let mut v = Vec::new();
            r.read_to_end(&mut v).unwrap();
            v
        });
        assert_eq!(got, data);
        let err = read_ahead(Failing(3_500_000), |r| {
            let mut v = Vec::new();
            let e = r.read_to_end(&mut v).unwrap_err();
            (v.len(), e.kind(), e.to_string())
        });
        assert_eq!(
            err,
            (
                3_500_000,
                io::ErrorKind::InvalidData,
                "frame damaged".to_string()
            )
        );
        // A consumer that stops early does not hang the producer.
        let first = read_ahead(&data[..], |r| {
            let mut b = [0u8; 10];
            r.read_exact(&mut b).unwrap();
            b[9]
        });
        assert_eq!(first, 9);
    }
}
