//! The connection deadline: a connection that makes no progress for 3/4 of
//! `header_timeout` (all of it at the latest) while nothing of it is under
//! way is closed. This is the header read timeout (slowloris: a head that
//! never ends) and the idle keep-alive timeout in one, checked lazily.
//!
//! hyper's own header read timeout armed a timer for every request: a clock
//! read, a boxed `Sleep`, an insert into and a removal from tokio's timer
//! wheel, ~2 % of a GET's samples on one core. Here a request
//! costs a counter bump, and each connection one timer that ticks every
//! quarter timeout: a connection with no head parsed, no handshake done and
//! no byte written over the last three quarters is closed at a tick, unless
//! a handler is running (a guard each, kept by a streamed body until it
//! ends) or a write waits for the client to take what was sent (a slow
//! reader: hyper never timed writes out, nor does this).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What one connection has done, as its watchdog sees it.
#[derive(Debug, Default)]
pub struct Activity {
    /// Heads parsed, handshakes done and writes that took bytes. Only the
    /// connection's own task writes it (the watchdog reads), so a load and
    /// a store do: no locked instruction on the hot path.
    progress: AtomicU64,
    /// Handlers running (a guard each): they may take longer than a window
    /// without writing, reading a body or waiting for a signature.
    busy: AtomicU32,
    /// The last write found the socket full: the client is taking the
    /// response, however slowly.
    blocked: AtomicBool,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Activity::default())
    }

    /// The connection moved on: a request head parsed, a TLS handshake
    /// done (a write's progress is [`Watched`]'s to count).
    pub fn advance(&self) {
        let p = self.progress.load(Ordering::Relaxed);
        self.progress.store(p.wrapping_add(1), Ordering::Relaxed);
    }

    /// Marks a handler running until the guard is dropped.
    pub fn busy(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::Relaxed);
        Busy(self.clone())
    }

    fn progress(&self) -> u64 {
        self.progress.load(Ordering::Relaxed)
    }

    fn under_way(&self) -> bool {
        self.busy.load(Ordering::Relaxed) > 0 || self.blocked.load(Ordering::Relaxed)
    }
}

/// A running handler; see [`Activity::busy`].
#[derive(Debug)]
pub struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Resolves once the connection made no progress over the last three of
/// its ticks, a quarter of `timeout` apart, with nothing under way; the
/// caller then drops the connection. `first`: when the first tick comes,
/// at most a quarter of `timeout` (spread over connections, so that a wave
/// of them does not time out in the same millisecond). A connection is so
/// closed between 3/4 of `timeout` and `timeout` after its last progress.
pub async fn expired(activity: Arc<Activity>, first: Duration, timeout: Duration) {
    // Never a zero window: that would spin.
    let window = (timeout / 4).max(Duration::from_millis(1));
    tokio::time::sleep(first).await;
    // The progress seen at the last three ticks, oldest first.
    let mut seen: [Option<u64>; 3] = [None; 3];
    loop {
        let now = activity.progress();
        if seen[0] == Some(now) && !activity.under_way() {
            return;
        }
        seen = [seen[1], seen[2], Some(now)];
        tokio::time::sleep(window).await;
    }
}

/// Runs a connection in a task and its watchdog in another: the watchdog
/// aborts the connection once expired (dropping it closes the socket and
/// frees its slot), and the connection, ending first, aborts the watchdog.
/// Apart, the watchdog's timer is not polled at every wake of the
/// connection.
pub fn spawn(
    connection: impl std::future::Future<Output = ()> + Send + 'static,
    activity: Arc<Activity>,
    first: Duration,
    timeout: Duration,
) {
    let (give, take) = tokio::sync::oneshot::channel::<tokio::task::AbortHandle>();
    let watchdog = tokio::spawn(async move {
        expired(activity, first, timeout).await;
        if let Ok(connection) = take.await {
            connection.abort();
        }
    });
    let watchdog = watchdog.abort_handle();
    let task = tokio::spawn(async move {
        connection.await;
        watchdog.abort();
    });
    let _ = give.send(task.abort_handle());
}

/// A connection's stream as hyper sees it: writes count as progress, and
/// reads first give back what was read before hyper took the connection
/// (see [`super::early`]).
pub struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
    /// Bytes read ahead, freed once hyper has taken them all.
    early: Vec<u8>,
}

impl<S> Watched<S> {
    /// A stream whose first `early` bytes were already read from `inner`.
    pub fn new(inner: S, early: Vec<u8>, activity: Arc<Activity>) -> Self {
        Watched { inner, activity, early }
    }

    fn counted(&self, written: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        let blocked = written.is_pending();
        if self.activity.blocked.load(Ordering::Relaxed) != blocked {
            self.activity.blocked.store(blocked, Ordering::Relaxed);
        }
        if let Poll::Ready(Ok(n)) = &written {
            if *n > 0 {
                self.activity.advance();
            }
        }
        written
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.early.is_empty() {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let n = this.early.len().min(buf.remaining());
        buf.put_slice(this.early.drain(..n).as_slice());
        if this.early.is_empty() {
            this.early = Vec::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.counted(written)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.counted(written)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
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
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const T: Duration = Duration::from_secs(10);

    /// Runs `during` beside `expired` under a paused clock; how long the
    /// watchdog took (a watchdog that never fires fails, not hangs).
    async fn lifetime(
        activity: Arc<Activity>,
        first: Duration,
        during: impl std::future::Future<Output = ()>,
    ) -> Duration {
        let start = tokio::time::Instant::now();
        let watchdog = expired(activity, first, T);
        tokio::pin!(watchdog);
        tokio::pin!(during);
        let mut during_done = false;
        let fired = tokio::time::timeout(Duration::from_secs(3600), async {
            loop {
                tokio::select! {
                    _ = &mut watchdog => return,
                    _ = &mut during, if !during_done => during_done = true,
                }
            }
        })
        .await;
        assert!(fired.is_ok(), "the watchdog never fired");
        start.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_is_closed_between_three_quarters_and_all_of_the_timeout() {
        for first in [Duration::ZERO, T / 8, T / 4] {
            let took = lifetime(Activity::new(), first, std::future::ready(())).await;
            assert!(took >= T * 3 / 4 && took <= T, "first tick at {first:?}: {took:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_goes_between_three_quarters_and_all_of_the_timeout_after_its_last_request() {
        for heads in [1u32, 7, 9, 18, 19, 40] {
            let a = Activity::new();
            let b = a.clone();
            let step = Duration::from_millis(500);
            let took = lifetime(a, T / 5, async move {
                for _ in 0..heads {
                    tokio::time::sleep(step).await;
                    b.advance();
                }
            })
            .await;
            let idle = took - step * heads;
            assert!(idle >= T * 3 / 4 && idle <= T, "{heads} heads: idle {idle:?}");
        }
    }

    /// A zero timeout still ticks (a zero window would spin the runtime).
    #[tokio::test(start_paused = true)]
    async fn a_zero_timeout_closes_at_once_without_spinning() {
        let start = tokio::time::Instant::now();
        expired(Activity::new(), Duration::ZERO, Duration::ZERO).await;
        assert_eq!(start.elapsed(), Duration::from_millis(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_running_handler_keeps_its_connection() {
        let a = Activity::new();
        let guard = a.busy();
        let took = lifetime(a, T / 4, async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            drop(guard);
        })
        .await;
        assert!(
            took >= Duration::from_secs(60) && took <= Duration::from_secs(60) + T,
            "{took:?}"
        );
    }

    /// Bytes read ahead come first, in order, then the stream's own, and
    /// the read-ahead buffer is freed once taken.
    #[tokio::test]
    async fn bytes_read_ahead_are_given_back_first() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut s = Watched::new(server, b"GET / HTTP/1.1\r\n\r\n".to_vec(), Activity::new());
        client.write_all(b"after").await.unwrap();
        drop(client);
        let mut small = [0u8; 7];
        let n = s.read(&mut small).await.unwrap();
        assert_eq!(&small[..n], b"GET / H");
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"TTP/1.1\r\n\r\nafter");
        assert_eq!(s.early.capacity(), 0);
    }

    /// A client taking its response slowly (a write waiting on a full
    /// socket for longer than the timeout) is not cut off.
    #[tokio::test(start_paused = true)]
    async fn a_response_still_being_taken_keeps_its_connection() {
        let a = Activity::new();
        let (client, server) = tokio::io::duplex(64);
        let mut out = Watched::new(server, Vec::new(), a.clone());
        let took = lifetime(a, T / 4, async move {
            let mut client = client;
            let reader = tokio::spawn(async move {
                let mut buf = [0u8; 64];
                // Nothing for 30 s, then all of it.
                tokio::time::sleep(Duration::from_secs(30)).await;
                while client.read(&mut buf).await.unwrap_or(0) > 0 {}
            });
            out.write_all(&[7u8; 640]).await.unwrap();
            out.shutdown().await.unwrap();
            drop(out);
            let _ = reader.await;
        })
        .await;
        assert!(
            took >= Duration::from_secs(30),
            "cut off while the client still read: {took:?}"
        );
    }

    /// `spawn`: an idle connection's task is aborted (what it holds, its
    /// connection slot, is freed), and a connection that ends stops its
    /// watchdog at once rather than at its next tick.
    #[tokio::test(start_paused = true)]
    async fn spawn_aborts_an_idle_connection_and_a_finished_one_stops_its_watchdog() {
        let slot = Arc::new(());
        let held = slot.clone();
        let a = Activity::new();
        spawn(
            async move {
                let _held = held;
                std::future::pending::<()>().await;
            },
            a.clone(),
            Duration::ZERO,
            T,
        );
        tokio::time::sleep(T + Duration::from_millis(1)).await;
        assert_eq!(Arc::strong_count(&slot), 1, "the idle connection still holds its slot");

        let b = Activity::new();
        spawn(async {}, b.clone(), T / 4, T);
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(
            Arc::strong_count(&b),
            1,
            "the finished connection's watchdog still runs"
        );
    }
}
