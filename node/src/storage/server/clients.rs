//! What one client may hold of the storage port: connections (per IPv4 address or IPv6 /64),
//! the memory of large request bodies and large answers, and how long it may take to send or
//! read them.
//!
//! - At most [`PER_CLIENT`] connections per client. When all [`MAX_CONNECTIONS`] are taken, a
//!   new connection pushes out one of a client holding more than its own client does: the
//!   oldest among those of the clients holding the most (so neither a thousand slow
//!   connections from a few addresses nor one from each of thousands keeps a fresh client
//!   out); a client already holding as many as anyone is refused instead. HTTP/1 runs one request at a time
//!   per connection, so this caps each client's requests in flight as well.
//! - Bodies and answers up to [`SMALL`] need nothing more (the connection cap bounds them);
//!   larger ones take their size from a shared budget ([`BODY_BUDGET`], [`ANSWER_BUDGET`])
//!   for as long as they are held, and are refused with 503 when it is spent.
//! - Every write of a connection must make progress within [`WRITE_TIMEOUT`] and every read
//!   within [`READ_TIMEOUT`] (longer than a request may take to answer: hyper reads on while
//!   it waits, and an onion request may wait 30 s for its next hop), and
//!   a request body must arrive whole within [`BODY_DEADLINE`].

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Bytes, Frame, SizeHint};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// Most open client connections.
pub const MAX_CONNECTIONS: usize = 4096;
/// Most open connections of one client (a carrier's NAT may put many users behind one address:
/// a Session client keeps one or two to a node).
pub const PER_CLIENT: usize = 64;
/// Bodies and answers at most this long take nothing from the budgets.
pub const SMALL: usize = 64 * 1024;
/// Bytes of large request bodies held at once.
pub const BODY_BUDGET: usize = 256 * 1024 * 1024;
/// Bytes of large answers held at once (until written).
pub const ANSWER_BUDGET: usize = 128 * 1024 * 1024;
/// A write that makes no progress for this long fails the connection (a client that does not
/// read its answer).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(15);
/// A read that makes no progress for this long fails the connection (an idle or silent one):
/// longer than the slowest answer (an onion request's 30 s hop timeout).
pub const READ_TIMEOUT: Duration = Duration::from_secs(45);
/// A request's body must arrive within this, however it trickles.
pub const BODY_DEADLINE: Duration = Duration::from_secs(30);
/// Answers are written in pieces of this size.
const FRAME: usize = 64 * 1024;

/// A client: its IPv4 address, or the /64 of its IPv6 address (an IPv4 address mapped into
/// IPv6 counts as the IPv4 address).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Client {
    /// IPv4.
    V4(std::net::Ipv4Addr),
    /// An IPv6 /64.
    V6(u64),
}

impl Client {
    /// A number for the client (to take turns on the workers by).
    pub fn key(self) -> u64 {
        match self {
            Client::V4(v4) => u64::from(u32::from(v4)) | (1 << 32),
            Client::V6(prefix) => prefix,
        }
    }
}

impl From<IpAddr> for Client {
    fn from(ip: IpAddr) -> Client {
        match ip {
            IpAddr::V4(v4) => Client::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Client::V4(v4),
                None => Client::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

#[derive(Default)]
struct Table {
    /// Each client's connections, oldest first: an id, when it came, and how to close it.
    by_client: HashMap<Client, VecDeque<(u64, std::time::Instant, Arc<Notify>)>>,
    total: usize,
    next: u64,
}

/// The open connections, by client.
pub struct Clients {
    table: Mutex<Table>,
    /// Large bodies' bytes, in KiB.
    bodies: Arc<Semaphore>,
    /// Large answers' bytes, in KiB.
    answers: Arc<Semaphore>,
}

/// A connection's place, given back when dropped; `closed` fires when a newer client's
/// connection pushed it out.
pub struct Admitted {
    clients: Arc<Clients>,
    client: Client,
    id: u64,
    /// Fires when the connection must close.
    pub closed: Arc<Notify>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut t = self.clients.lock();
        let (removed, emptied) = match t.by_client.get_mut(&self.client) {
            Some(list) => {
                let at = list.iter().position(|(id, _, _)| *id == self.id);
                if let Some(at) = at {
                    list.remove(at);
                }
                (at.is_some(), list.is_empty())
            }
            None => (false, false),
        };
        if removed {
            t.total -= 1;
        }
        if emptied {
            t.by_client.remove(&self.client);
        }
    }
}

fn kib(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX)
}

impl Clients {
    /// An empty table with full budgets.
    pub fn new() -> Arc<Clients> {
        Arc::new(Clients {
            table: Mutex::default(),
            bodies: Arc::new(Semaphore::new(kib(BODY_BUDGET) as usize)),
            answers: Arc::new(Semaphore::new(kib(ANSWER_BUDGET) as usize)),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place for a new connection from `ip`, or `None` (see the module docs).
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Admitted> {
        let client = Client::from(ip);
        let mut t = self.lock();
        let held = t.by_client.get(&client).map_or(0, VecDeque::len);
        if held >= PER_CLIENT {
            return None;
        }
        if t.total >= MAX_CONNECTIONS {
            // Push out a connection of a client holding more than this one does: the oldest
            // among those of the clients holding the most (so many clients of one connection
            // each cannot keep a new one out either).
            let (greediest, most) = t
                .by_client
                .iter()
                .filter(|(_, l)| !l.is_empty())
                .map(|(c, l)| ((l.len(), std::cmp::Reverse(l.front().map(|e| e.1))), *c))
                .max()
                .map(|((n, _), c)| (c, n))?;
            if most <= held {
                return None;
            }
            let list = t.by_client.get_mut(&greediest)?;
            let (_, _, close) = list.pop_front()?;
            close.notify_one();
            t.total -= 1;
        }
        let id = t.next;
        t.next += 1;
        let closed = Arc::new(Notify::new());
        t.by_client.entry(client).or_default().push_back((
            id,
            std::time::Instant::now(),
            closed.clone(),
        ));
        t.total += 1;
        Some(Admitted {
            clients: self.clone(),
            client,
            id,
            closed,
        })
    }

    /// Room for a body of `len` bytes (or of unknown length, counted as `max`): nothing for a
    /// small one, a share of the body budget for a large one; `Err` when the budget is spent.
    pub fn body_room(
        &self,
        len: Option<u64>,
        max: usize,
    ) -> Result<Option<OwnedSemaphorePermit>, Spent> {
        let len = len.map_or(max, |l| usize::try_from(l).unwrap_or(usize::MAX).min(max));
        if len <= SMALL {
            return Ok(None);
        }
        self.bodies
            .clone()
            .try_acquire_many_owned(kib(len))
            .map(Some)
            .map_err(|_| Spent)
    }

    /// An answer's body: written in pieces, holding a share of the answer budget until done
    /// when large; `None` when that budget is spent.
    pub fn answer(&self, bytes: Bytes) -> Option<Answer> {
        self.answer_in(bytes, Room::none())
    }

    /// Room for the answer to a request that may be large (`large` bytes of
    /// JSON, taken from the answer budget before the request runs), or a small room when
    /// the budget has not that much left: what the answer is made and held in until it is
    /// written, so that answers being made count as well as answers being written.
    pub fn room(&self, large: usize) -> Room {
        match self.answers.clone().try_acquire_many_owned(kib(large)) {
            Ok(p) => Room {
                permit: Some(p),
                bytes: large,
            },
            Err(_) => Room::none(),
        }
    }

    /// [`Clients::answer`] for an answer made in `room`: it keeps the part of the room it
    /// needs (none when small) and gives back the rest; more is taken from the budget if it
    /// outgrew the room.
    pub fn answer_in(&self, bytes: Bytes, room: Room) -> Option<Answer> {
        if bytes.len() <= SMALL {
            return Some(Answer::small(bytes));
        }
        let need = kib(bytes.len());
        let permit = match room.permit {
            Some(mut p) if p.num_permits() >= need as usize => {
                let spare = p.num_permits() - need as usize;
                drop(p.split(spare));
                p
            }
            held => {
                let more = need - held.as_ref().map_or(0, |p| p.num_permits() as u32);
                let mut p = self.answers.clone().try_acquire_many_owned(more).ok()?;
                if let Some(h) = held {
                    p.merge(h);
                }
                p
            }
        };
        Some(Answer {
            bytes,
            _permit: Some(permit),
        })
    }

    /// Bytes of large answers that may still be taken (what is left of the answer budget).
    pub fn answer_room(&self) -> usize {
        self.answers.available_permits().saturating_mul(1024)
    }

    /// How many connections are open.
    pub fn open(&self) -> usize {
        self.lock().total
    }
}

/// Room taken in the answer budget for an answer still being made ([`Clients::room`]).
#[derive(Debug)]
pub struct Room {
    permit: Option<OwnedSemaphorePermit>,
    bytes: usize,
}

impl Room {
    /// No room taken: the answer should be small.
    pub fn none() -> Room {
        Room {
            permit: None,
            bytes: SMALL,
        }
    }

    /// Bytes of JSON the answer may take.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Gives back all but `bytes` of the room (an answer made, waiting for something else
    /// before it is written, holds no more than it takes).
    pub fn keep(&mut self, bytes: usize) {
        let bytes = bytes.max(SMALL);
        if let Some(p) = self.permit.as_mut() {
            let spare = p.num_permits().saturating_sub(kib(bytes) as usize);
            drop(p.split(spare));
            self.bytes = self.bytes.min(bytes);
        }
    }
}

/// The budget of large bodies is spent (answer 503).
#[derive(Debug)]
pub struct Spent;

/// An answer's body (see [`Clients::answer`]).
pub struct Answer {
    bytes: Bytes,
    _permit: Option<OwnedSemaphorePermit>,
}

impl Answer {
    /// A small answer, outside the budget (errors and refusals).
    pub fn small(bytes: Bytes) -> Answer {
        Answer {
            bytes,
            _permit: None,
        }
    }
}

impl Body for Answer {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.bytes.is_empty() {
            return Poll::Ready(None);
        }
        let n = self.bytes.len().min(FRAME);
        let piece = self.bytes.split_to(n);
        Poll::Ready(Some(Ok(Frame::data(piece))))
    }

    fn is_end_stream(&self) -> bool {
        self.bytes.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.bytes.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn clients_are_addresses_and_ipv6_slash_64s() {
        assert_eq!(
            Client::from(ip("10.0.0.1")),
            Client::from(ip("::ffff:10.0.0.1"))
        );
        assert_eq!(
            Client::from(ip("2001:db8::1")),
            Client::from(ip("2001:db8::ffff:1"))
        );
        assert_ne!(
            Client::from(ip("2001:db8::1")),
            Client::from(ip("2001:db8:0:1::1"))
        );
    }

    #[test]
    fn a_full_table_pushes_out_the_greediest_clients_oldest() {
        let clients = Clients::new();
        let mut held = Vec::new();
        for _ in 0..PER_CLIENT {
            held.push(clients.admit(ip("10.0.0.1")).expect("room"));
        }
        assert!(clients.admit(ip("10.0.0.1")).is_none(), "per-client cap");
        // Fill the table from many addresses, a few connections each.
        let mut others = Vec::new();
        let mut n = 0u32;
        while clients.open() < MAX_CONNECTIONS {
            let a = IpAddr::V4(std::net::Ipv4Addr::from(0x0b00_0000 + n / 4));
            others.push(clients.admit(a).expect("room"));
            n += 1;
        }
        // A fresh client gets in: the oldest of 10.0.0.1's connections is told to close.
        let fresh = clients
            .admit(ip("192.168.1.1"))
            .expect("a fresh client is let in");
        assert_eq!(clients.open(), MAX_CONNECTIONS);
        let first = held[0].closed.clone();
        let told = first.notified();
        tokio::pin!(told);
        assert!(
            futures::FutureExt::now_or_never(told.as_mut()).is_some(),
            "the greediest client's oldest connection was pushed out"
        );
        // The client holding the most (31 now) pushes out no one.
        assert!(clients.admit(ip("10.0.0.1")).is_none());
        // Dropping frees places.
        drop(fresh);
        assert!(clients.admit(ip("10.0.0.1")).is_some());
    }

    /// A full table of clients holding one connection each: a new client still gets in, by
    /// pushing out the oldest of them; a client already holding one does not.
    #[test]
    fn one_connection_each_from_thousands_of_addresses_keeps_no_one_out() {
        let clients = Clients::new();
        let mut held = Vec::new();
        for n in 0..MAX_CONNECTIONS as u32 {
            let a = IpAddr::V4(std::net::Ipv4Addr::from(0x0b00_0000 + n));
            held.push(clients.admit(a).expect("room"));
        }
        let first = held[0].closed.clone();
        let told = first.notified();
        tokio::pin!(told);
        let fresh = clients
            .admit(ip("192.168.7.7"))
            .expect("a fresh client is let in");
        assert!(
            futures::FutureExt::now_or_never(told.as_mut()).is_some(),
            "the oldest connection was pushed out"
        );
        assert_eq!(clients.open(), MAX_CONNECTIONS);
        assert!(
            clients.admit(ip("192.168.7.7")).is_none(),
            "it holds as many as anyone"
        );
        drop(fresh);
    }

    #[test]
    fn large_bodies_and_answers_share_budgets() {
        let clients = Clients::new();
        assert!(clients
            .body_room(Some(1000), 10 << 20)
            .expect("room")
            .is_none());
        let mut held = Vec::new();
        while let Ok(p) = clients.body_room(Some(10 << 20), 10 << 20) {
            held.push(p);
        }
        assert_eq!(held.len(), BODY_BUDGET / (10 << 20));
        // Small ones still pass; unknown lengths count as the largest.
        assert!(clients.body_room(Some(100), 10 << 20).is_ok());
        assert!(clients.body_room(None, 10 << 20).is_err());
        drop(held);
        assert!(clients.body_room(None, 10 << 20).is_ok());
        let big = Bytes::from(vec![0u8; ANSWER_BUDGET / 2]);
        let a = clients.answer(big.clone()).expect("room");
        let b = clients.answer(big.clone()).expect("room");
        assert!(
            clients.answer(big.clone()).is_none(),
            "the answer budget is spent"
        );
        assert!(clients.answer(Bytes::from_static(b"small")).is_some());
        drop((a, b));
        assert!(clients.answer(big).is_some());
    }
}
