//! A lingering close for the reader connection: after lifeboat has said goodbye (HTTP/2 GOAWAY, TLS
//! `close_notify`, FIN) it keeps reading until the server closes too, for at most [`LINGER`].
//!
//! Why: closing the socket while the server's own goodbye (its GOAWAY, its `close_notify`) is still in
//! flight makes the kernel answer with a RST, and the server's next write fails with "broken pipe". PBS
//! then ends the reader task with `reader error: broken pipe` instead of `reader finished successfully`,
//! an error in the administrator's task list caused by nothing but a rude client. The same reasoning is
//! behind HTTP servers' "lingering close".

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// How long lifeboat waits for the server to close after its own goodbye.
pub const LINGER: Duration = Duration::from_secs(2);

/// An I/O stream whose shutdown waits (bounded) for the peer's end of stream.
pub struct Lingering<T> {
    inner: T,
    state: Close,
}

enum Close {
    Open,
    /// Our side is shut; reading what the peer still sends until EOF or the deadline.
    Draining(Pin<Box<Sleep>>),
    Done,
}

impl<T> Lingering<T> {
    pub fn new(inner: T) -> Self {
        Lingering {
            inner,
            state: Close::Open,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Lingering<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Lingering<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                Close::Open => {
                    let shut = ready!(Pin::new(&mut this.inner).poll_shutdown(cx));
                    this.state = Close::Draining(Box::pin(tokio::time::sleep(LINGER)));
                    // A failed shutdown means the connection is gone already: nothing to wait for.
                    if shut.is_err() {
                        this.state = Close::Done;
                        return Poll::Ready(shut);
                    }
                }
                Close::Draining(deadline) => {
                    if deadline.as_mut().poll(cx).is_ready() {
                        this.state = Close::Done;
                        continue;
                    }
                    let mut scratch = [0u8; 4096];
                    let mut buf = ReadBuf::new(&mut scratch);
                    match ready!(Pin::new(&mut this.inner).poll_read(cx, &mut buf)) {
                        // More of the server's goodbye (or a late frame): discard it and read on.
                        Ok(()) if !buf.filled().is_empty() => {}
                        // End of stream, or the server reset/closed without TLS close_notify: done.
                        Ok(()) | Err(_) => this.state = Close::Done,
                    }
                }
                Close::Done => return Poll::Ready(Ok(())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn shutdown_waits_for_the_peer_and_reads_its_goodbye() {
        let (client, mut server) = tokio::io::duplex(64);
        let mut client = Lingering::new(client);
        let peer = tokio::spawn(async move {
            // The peer sees our end of stream first, then sends its goodbye and closes.
            let mut got = Vec::new();
            server.read_to_end(&mut got).await?;
            tokio::time::sleep(Duration::from_millis(50)).await;
            server.write_all(b"goodbye").await?;
            server.shutdown().await?;
            Ok::<_, io::Error>(got)
        });
        client.write_all(b"bye").await.unwrap();
        let started = tokio::time::Instant::now();
        client.shutdown().await.unwrap();
        // Returned only after the peer's delayed goodbye, and well before the linger deadline.
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert!(started.elapsed() < LINGER);
        assert_eq!(peer.await.unwrap().unwrap(), b"bye");
    }

    #[tokio::test]
    async fn a_peer_that_never_closes_is_given_up_after_the_linger_time() {
        let (client, _server) = tokio::io::duplex(64);
        let mut client = Lingering::new(client);
        let started = tokio::time::Instant::now();
        client.shutdown().await.unwrap();
        assert!(started.elapsed() >= LINGER);
        assert!(started.elapsed() < LINGER * 2);
    }
}
