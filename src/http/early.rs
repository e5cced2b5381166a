//! A connection's first request head, read before hyper takes the
//! connection.
//!
//! hyper allocates 16 KiB for a connection as soon as it is built (an
//! 8 KiB write buffer at once, an 8 KiB read buffer at the first read) and
//! keeps them until the connection ends. A client that connects and
//! trickles a head a byte a second (slowloris) would hold them until the
//! watchdog closes it. So, as nginx does with its header buffer, nothing is
//! allocated for a connection until it has sent a head: [`read_head`] keeps
//! the bytes read so far (a handful for a slowloris) in one small vector,
//! and [`super::watchdog::Watched`] gives them back to hyper first.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::Poll;

use tokio::io::{AsyncRead, ReadBuf};

/// Past this many bytes without a head's end, hyper takes over anyway (its
/// own limits then answer an oversized head).
pub const HANDOVER_AFTER: usize = 4096;

/// True once `bytes` hold the end of a head: an empty line, its CR optional
/// as httparse accepts it. Ending early is harmless (hyper parses as
/// before, only the saving is lost); ending late is not, hence the cap.
fn head_ended(bytes: &[u8]) -> bool {
    bytes.windows(2).any(|w| w == b"\n\n") || bytes.windows(3).any(|w| w == b"\n\r\n")
}

thread_local! {
    /// Where each read lands before the bytes are kept: one buffer per
    /// thread, not one per waiting connection.
    static SCRATCH: std::cell::RefCell<Box<[u8; HANDOVER_AFTER]>> = std::cell::RefCell::new(Box::new([0; HANDOVER_AFTER]));
}

/// Reads from `io` until a request head has ended, more than
/// [`HANDOVER_AFTER`] bytes have come, or the client has closed its side;
/// returns everything read. None: the client sent nothing before closing,
/// or the read failed, and the connection has nothing left to serve.
pub async fn read_head<S: AsyncRead + Unpin>(io: &mut S) -> Option<Vec<u8>> {
    let kept = read_until_head(io).await.ok()?;
    (!kept.is_empty()).then_some(kept)
}

async fn read_until_head<S: AsyncRead + Unpin>(io: &mut S) -> io::Result<Vec<u8>> {
    let mut kept = Vec::new();
    loop {
        let got = poll_fn(|cx| {
            SCRATCH.with(|s| {
                let mut s = s.borrow_mut();
                let mut buf = ReadBuf::new(&mut s[..]);
                match Pin::new(&mut *io).poll_read(cx, &mut buf) {
                    Poll::Ready(Ok(())) => {
                        kept.extend_from_slice(buf.filled());
                        Poll::Ready(Ok(buf.filled().len()))
                    }
                    Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                    Poll::Pending => Poll::Pending,
                }
            })
        })
        .await?;
        if got == 0 || kept.len() >= HANDOVER_AFTER {
            return Ok(kept);
        }
        // A head's end may straddle two reads: look back two bytes.
        let from = kept.len() - got;
        if head_ended(&kept[from.saturating_sub(2)..]) {
            return Ok(kept);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn a_head_ends_at_its_empty_line_with_or_without_cr() {
        assert!(head_ended(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(head_ended(b"GET / HTTP/1.1\nHost: x\n\n"));
        assert!(head_ended(b"GET / HTTP/1.1\r\n\r\nbody"));
        assert!(!head_ended(b"GET / HTTP/1.1\r\nHost: x\r\n"));
        assert!(!head_ended(b"GET / HTTP/1.1\r\nHost: x\r"));
    }

    /// A slowloris keeps only what it sent; the head is handed over whole
    /// once its last byte arrives, whatever the split.
    #[tokio::test]
    async fn a_head_sent_a_byte_at_a_time_is_kept_until_it_ends() {
        let head = b"GET /ocsp/x HTTP/1.1\r\nHost: x\r\n\r\n";
        let (mut client, mut server) = tokio::io::duplex(64);
        let reader = tokio::spawn(async move { read_head(&mut server).await });
        for b in head.iter() {
            client.write_all(&[*b]).await.unwrap();
            tokio::task::yield_now().await;
        }
        let got = reader.await.unwrap().unwrap();
        assert_eq!(got, head);
    }

    #[tokio::test]
    async fn bytes_after_the_head_come_along() {
        let sent = b"POST /ocsp HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
        let (mut client, mut server) = tokio::io::duplex(4096);
        client.write_all(sent).await.unwrap();
        assert_eq!(read_head(&mut server).await.unwrap(), sent);
    }

    #[tokio::test]
    async fn an_endless_head_is_handed_over_at_the_cap() {
        let (mut client, mut server) = tokio::io::duplex(64 * 1024);
        let junk = vec![b'a'; 3 * HANDOVER_AFTER];
        client.write_all(&junk).await.unwrap();
        let got = read_head(&mut server).await.unwrap();
        assert!(
            got.len() >= HANDOVER_AFTER && got.len() <= 2 * HANDOVER_AFTER,
            "{}",
            got.len()
        );
        assert!(got.iter().all(|b| *b == b'a'));
    }

    #[tokio::test]
    async fn a_client_that_closes_hands_over_what_it_sent() {
        let (mut client, mut server) = tokio::io::duplex(64);
        client.write_all(b"GET / HT").await.unwrap();
        drop(client);
        assert_eq!(read_head(&mut server).await.unwrap(), b"GET / HT");
        let (client, mut server) = tokio::io::duplex(64);
        drop(client);
        assert_eq!(read_head(&mut server).await, None);
    }
}
