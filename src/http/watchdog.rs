//! The connection deadline: a connection that makes no progress for
//! `header_timeout` while no request of it is being handled is closed.
//! This is the header read timeout (slowloris: a head that never ends) and
//! the idle keep-alive timeout in one, checked lazily.
//!
//! hyper's own header read timeout armed a timer for every request: a clock
//! read, a boxed `Sleep`, an insert into and a removal from tokio's timer
//! wheel, ~0.35 µs of the ~6 µs a GET costs on one core. Here a request
//! costs a counter bump, and each connection one timer that fires every
//! half timeout: at a tick, a connection with no head parsed and no byte
//! written since the previous tick, and no handler running, is closed. An
//! idle connection thus goes between half and all of `header_timeout` after
//! its last progress; a new one has at least 7/8 of it for its first head.
//! A response the client stops reading counts as no progress: a reader that
//! takes nothing for a whole window is cut off too.

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
    /// Heads parsed and writes that took bytes. Only the connection's own
    /// task writes it (the watchdog reads), so a load and a store do: no
    /// locked instruction on the hot path.
    progress: AtomicU64,
    /// Handlers running (a guard each): they may take longer than a window
    /// without writing, reading a body or waiting for a signature.
    busy: AtomicU32,
    /// The connection ended: its watchdog stops at its next tick.
    ended: AtomicBool,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Activity::default())
    }

    fn bump(&self) {
        let p = self.progress.load(Ordering::Relaxed);
        self.progress.store(p.wrapping_add(1), Ordering::Relaxed);
    }

    /// A request head was parsed.
    pub fn head(&self) {
        self.bump();
    }

    /// Marks a handler running until the guard is dropped.
    pub fn busy(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::Relaxed);
        Busy(self.clone())
    }

    /// The connection ended on its own.
    pub fn end(&self) {
        self.ended.store(true, Ordering::Relaxed);
    }

    fn idle_since(&self, seen: u64) -> bool {
        self.progress.load(Ordering::Relaxed) == seen && self.busy.load(Ordering::Relaxed) == 0
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

/// Resolves once the connection made no progress over a whole window of
/// `timeout / 2` with no handler running (or ended); the caller then drops
/// the connection. `first`: when the first tick comes (spread over connections
/// so that a wave of them does not time out in the same millisecond); it
/// only records, so a connection's first head has `first + timeout / 2`.
pub async fn expired(activity: Arc<Activity>, first: Duration, timeout: Duration) {
    // Never a zero window: that would spin.
    let window = (timeout / 2).max(Duration::from_millis(1));
    tokio::time::sleep(first).await;
    let mut seen = activity.progress.load(Ordering::Relaxed);
    loop {
        tokio::time::sleep(window).await;
        if activity.ended.load(Ordering::Relaxed) || activity.idle_since(seen) {
            return;
        }
        seen = activity.progress.load(Ordering::Relaxed);
    }
}

/// Runs a connection in a task and its watchdog in another that aborts it
/// once expired (dropping the connection closes it). Apart, the watchdog's
/// timer is not polled at every wake of the connection.
pub fn spawn(
    connection: impl std::future::Future<Output = ()> + Send + 'static,
    activity: Arc<Activity>,
    first: Duration,
    timeout: Duration,
) {
    let ends = activity.clone();
    let task = tokio::spawn(async move {
        connection.await;
        ends.end();
    });
    let abort = task.abort_handle();
    tokio::spawn(async move {
        expired(activity, first, timeout).await;
        abort.abort();
    });
}

/// A connection's stream that counts writes as progress.
pub struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Watched<S> {
    pub fn new(inner: S, activity: Arc<Activity>) -> Self {
        Watched { inner, activity }
    }

    fn counted(&self, written: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        if let Poll::Ready(Ok(n)) = &written {
            if *n > 0 {
                self.activity.bump();
            }
        }
        written
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
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
    use tokio::io::AsyncWriteExt;

    const T: Duration = Duration::from_secs(10);

    /// Resolves `expired` under a paused clock; how long it took.
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
        loop {
            tokio::select! {
                _ = &mut watchdog => return start.elapsed(),
                _ = &mut during, if !during_done => during_done = true,
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_is_closed_within_the_timeout() {
        let a = Activity::new();
        let took = lifetime(a, T.mul_f64(0.4), std::future::ready(())).await;
        assert!(took <= T && took >= T.mul_f64(0.875), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_goes_between_half_and_all_of_the_timeout_after_its_last_request() {
        for heads in [1u32, 7, 9, 18, 19, 40] {
            let a = Activity::new();
            let b = a.clone();
            let step = Duration::from_millis(500);
            let took = lifetime(a, T.mul_f64(0.45), async move {
                for _ in 0..heads {
                    tokio::time::sleep(step).await;
                    b.head();
                }
            })
            .await;
            let idle = took - step * heads;
            assert!(idle >= T / 2 && idle <= T, "{heads} heads: idle {idle:?}");
        }
    }

    /// A zero timeout still ticks (a zero window would spin the runtime).
    #[tokio::test(start_paused = true)]
    async fn a_zero_timeout_closes_at_once_without_spinning() {
        let start = tokio::time::Instant::now();
        expired(Activity::new(), Duration::ZERO, Duration::ZERO).await;
        assert_eq!(start.elapsed(), Duration::from_millis(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_running_handler_keeps_its_connection() {
        let a = Activity::new();
        let guard = a.busy();
        let took = lifetime(a, T, async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            drop(guard);
        })
        .await;
        assert!(
            took >= Duration::from_secs(60) && took <= Duration::from_secs(60) + T,
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_response_still_being_taken_keeps_its_connection() {
        let a = Activity::new();
        let (client, server) = tokio::io::duplex(64);
        let mut out = Watched::new(server, a.clone());
        let took = lifetime(a, T, async move {
            let mut client = client;
            let reader = tokio::spawn(async move {
                let mut buf = [0u8; 16];
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if tokio::io::AsyncReadExt::read(&mut client, &mut buf).await.unwrap_or(0) == 0 {
                        break;
                    }
                }
            });
            // 40 s of a slow reader: 640 bytes at 16 a second.
            out.write_all(&[7u8; 640]).await.unwrap();
            out.shutdown().await.unwrap();
            drop(out);
            let _ = reader.await;
        })
        .await;
        assert!(
            took >= Duration::from_secs(39),
            "cut off while the client still read: {took:?}"
        );
    }
}
