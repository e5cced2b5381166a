//! A plain TCP connection that sends mirrored bodies with `sendfile`.
//!
//! hyper writes a response as `[head, body]` in one vectored write. When a
//! slice lies inside a body the snapshot mirrored
//! ([`crate::snapshot::zerocopy`]), this stream writes what precedes it as
//! usual and then hands the kernel the mirror's pages for the slice, so the
//! body is never copied from user memory. Everything else (reads, small
//! bodies, unmirrored ones) goes to the `TcpStream` unchanged.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use crate::snapshot::zerocopy;

pub struct SendfileStream {
    inner: TcpStream,
    /// TCP_CORK is on: a head waits for its mirrored body, and the body's
    /// pieces for each other, so the kernel sends full segments (as nginx's
    /// `tcp_nopush` does); set off once the body is all sent. Without it,
    /// each piece is pushed at once and a download costs twice the CPU.
    corked: bool,
}

impl SendfileStream {
    pub fn new(inner: TcpStream) -> Self {
        SendfileStream { inner, corked: false }
    }

    fn cork(&mut self, on: bool) {
        if self.corked != on {
            // Best effort: without it the bytes are the same, only slower.
            let _ = rustix::net::sockopt::set_tcp_cork(&self.inner, on);
            self.corked = on;
        }
    }

    /// Sends a whole mirrored slice, corked until its last byte is out.
    fn poll_mirrored(
        &mut self,
        cx: &mut Context<'_>,
        file: &std::os::fd::OwnedFd,
        offset: u64,
        len: usize,
    ) -> Poll<io::Result<usize>> {
        self.cork(true);
        let sent = ready!(self.poll_sendfile(cx, file, offset, len));
        if !matches!(sent, Ok(n) if n < len && n > 0) {
            self.cork(false);
        }
        Poll::Ready(sent)
    }

    /// Sends `len` bytes of `file` from `offset` when the socket can take
    /// them; like a write, it may send fewer.
    fn poll_sendfile(
        &self,
        cx: &mut Context<'_>,
        file: &std::os::fd::OwnedFd,
        offset: u64,
        len: usize,
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.inner.poll_write_ready(cx))?;
            let sent = self.inner.try_io(Interest::WRITABLE, || {
                let mut at = offset;
                rustix::fs::sendfile(&self.inner, file, Some(&mut at), len).map_err(io::Error::from)
            });
            match sent {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }
}

impl AsyncRead for SendfileStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for SendfileStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match zerocopy::find(buf) {
            Some((file, offset)) => this.poll_mirrored(cx, &file, offset, buf.len()),
            None => {
                this.cork(false);
                Pin::new(&mut this.inner).poll_write(cx, buf)
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // Empty slices write nothing: skipped, so a mirrored slice after
        // them is not taken for one that needs a writev first.
        let bufs = &bufs[bufs.iter().take_while(|b| b.is_empty()).count()..];
        // The slices before the first mirrored one go out as one writev;
        // the caller comes back for the rest, mirrored slice first.
        let mirrored = bufs
            .iter()
            .enumerate()
            .find_map(|(i, b)| zerocopy::find(b).map(|found| (i, found)));
        match mirrored {
            Some((0, (file, offset))) => this.poll_mirrored(cx, &file, offset, bufs[0].len()),
            Some((i, _)) => {
                // The head waits in the socket for the body that follows.
                this.cork(true);
                Pin::new(&mut this.inner).poll_write_vectored(cx, &bufs[..i])
            }
            None => {
                // Nothing waits on a mirrored body (one that stopped being
                // mirrored between a head and its body included).
                this.cork(false);
                Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A head and a mirrored body written as hyper writes them arrive whole
    /// and in order, across partial writes (a small socket buffer).
    #[tokio::test]
    async fn a_mirrored_body_arrives_byte_for_byte_after_its_head() {
        zerocopy::mirror_in(&std::env::temp_dir());
        let body = Bytes::from((0..2_000_000u32).map(|i| (i * 7 % 253) as u8).collect::<Vec<_>>());
        let _mirror = zerocopy::Mirror::of(&body).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let reader = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            got
        });
        let mut out = SendfileStream::new(TcpStream::connect(addr).await.unwrap());
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 2000000\r\n\r\n".to_vec();
        let (mut a, mut b): (&[u8], &[u8]) = (&head, &body[..]);
        while !a.is_empty() || !b.is_empty() {
            let n = std::future::poll_fn(|cx| {
                Pin::new(&mut out).poll_write_vectored(cx, &[io::IoSlice::new(a), io::IoSlice::new(b)])
            })
            .await
            .unwrap();
            let from_a = n.min(a.len());
            a = &a[from_a..];
            b = &b[n - from_a..];
        }
        out.shutdown().await.unwrap();
        let got = reader.await.unwrap();
        assert_eq!(&got[..head.len()], &head[..]);
        assert!(got[head.len()..] == body[..], "the body differs");
    }
}
