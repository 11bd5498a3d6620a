//! A real DNS server for resolver tests: hickory-server serving one zone
//! on 127.0.0.1 at a free port (UDP and TCP), whose records the test
//! changes while it runs, and which can be told to answer SERVFAIL or to
//! stop answering.

use std::{
    net::{IpAddr, SocketAddr},
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicU8, AtomicU64, Ordering},
    },
    time::Duration,
};

use hickory_server::{
    Server,
    net::runtime::Time,
    proto::{
        op::{Metadata, ResponseCode},
        rr::{
            LowerName, Name, RData, Record, RecordType, RrKey,
            rdata::{A, AAAA, SOA, SRV},
        },
    },
    server::{Request, RequestHandler, ResponseHandler, ResponseInfo},
    store::in_memory::InMemoryZoneHandler,
    zone_handler::{AxfrPolicy, Catalog, MessageResponseBuilder, ZoneType},
};

/// The TTL of every record: long, so that a resolver that cached answers
/// would miss the changes the tests make.
const TTL: u32 = 3600;

/// How the server treats queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// Answer from the zone.
    Answer = 0,
    /// Answer every query with SERVFAIL.
    ServFail = 1,
    /// Read queries and never answer (the client times out).
    Silent = 2,
}

/// A running DNS server; stops when dropped.
pub struct DnsServer {
    /// Where it listens (UDP and TCP).
    pub addr: SocketAddr,
    origin: Name,
    zone: Arc<InMemoryZoneHandler>,
    mode: Arc<AtomicU8>,
    queries: Arc<AtomicU64>,
    serial: AtomicU64,
    task: tokio::task::JoinHandle<()>,
}

struct Handler {
    catalog: Catalog,
    mode: Arc<AtomicU8>,
    queries: Arc<AtomicU64>,
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        self.queries.fetch_add(1, Ordering::SeqCst);
        let metadata = Metadata::response_from_request(&request.metadata);
        match self.mode.load(Ordering::SeqCst) {
            0 => {
                self.catalog
                    .handle_request::<R, T>(request, response_handle)
                    .await
            }
            1 => {
                let response = MessageResponseBuilder::from_message_request(request)
                    .error_msg(&request.metadata, ResponseCode::ServFail);
                match response_handle.send_response(response).await {
                    Ok(info) => info,
                    Err(_) => no_answer(metadata),
                }
            }
            _ => no_answer(metadata),
        }
    }
}

fn no_answer(mut metadata: Metadata) -> ResponseInfo {
    metadata.response_code = ResponseCode::ServFail;
    hickory_server::proto::op::Header {
        metadata,
        counts: Default::default(),
    }
    .into()
}

impl DnsServer {
    /// Serves an empty zone `origin` (e.g. `"test."`) on 127.0.0.1.
    pub async fn start(origin: &str) -> DnsServer {
        let origin = Name::from_str(origin).expect("zone name");
        let zone = InMemoryZoneHandler::empty(origin.clone(), ZoneType::Primary, AxfrPolicy::Deny);
        let soa = SOA::new(
            Name::from_str("ns.test.").unwrap(),
            Name::from_str("admin.test.").unwrap(),
            1,
            60,
            60,
            600,
            0,
        );
        assert!(
            zone.upsert(Record::from_rdata(origin.clone(), 0, RData::SOA(soa)), 1)
                .await
        );
        let zone = Arc::new(zone);
        let mut catalog = Catalog::new();
        catalog.upsert(LowerName::new(&origin), vec![zone.clone()]);
        let mode = Arc::new(AtomicU8::new(Mode::Answer as u8));
        let queries = Arc::new(AtomicU64::new(0));
        let handler = Handler {
            catalog,
            mode: mode.clone(),
            queries: queries.clone(),
        };

        // UDP and TCP on one port: take a free UDP port, then its TCP twin.
        let (udp, tcp) = loop {
            let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let addr = udp.local_addr().unwrap();
            if let Ok(tcp) = tokio::net::TcpListener::bind(addr).await {
                break (udp, tcp);
            }
        };
        let addr = udp.local_addr().unwrap();
        let mut server = Server::new(handler);
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 16);
        let task = tokio::spawn(async move {
            let _ = server.block_until_done().await;
        });
        DnsServer {
            addr,
            origin,
            zone,
            mode,
            queries,
            serial: AtomicU64::new(2),
            task,
        }
    }

    fn name(&self, name: &str) -> Name {
        Name::from_str(name)
            .unwrap()
            .append_domain(&self.origin)
            .unwrap()
    }

    fn next_serial(&self) -> u32 {
        self.serial.fetch_add(1, Ordering::SeqCst) as u32
    }

    /// Replaces the A and AAAA records of `name` (relative to the zone).
    pub async fn set_addresses(&self, name: &str, ips: &[IpAddr]) {
        let fqdn = self.name(name);
        self.remove_type(&fqdn, RecordType::A).await;
        self.remove_type(&fqdn, RecordType::AAAA).await;
        let serial = self.next_serial();
        for ip in ips {
            let rdata = match ip {
                IpAddr::V4(v4) => RData::A(A(*v4)),
                IpAddr::V6(v6) => RData::AAAA(AAAA(*v6)),
            };
            assert!(
                self.zone
                    .upsert(Record::from_rdata(fqdn.clone(), TTL, rdata), serial)
                    .await
            );
        }
    }

    /// Replaces the SRV records of `name` with `(target, port)` pairs;
    /// targets are absolute names (`"localhost."`).
    pub async fn set_srv(&self, name: &str, targets: &[(&str, u16)]) {
        let fqdn = self.name(name);
        self.remove_type(&fqdn, RecordType::SRV).await;
        let serial = self.next_serial();
        for (target, port) in targets {
            let srv = SRV::new(10, 10, *port, Name::from_str(target).unwrap());
            assert!(
                self.zone
                    .upsert(
                        Record::from_rdata(fqdn.clone(), TTL, RData::SRV(srv)),
                        serial
                    )
                    .await
            );
        }
    }

    /// Removes every record of `name`: the server answers NXDOMAIN.
    pub async fn remove(&self, name: &str) {
        let fqdn = self.name(name);
        for t in [RecordType::A, RecordType::AAAA, RecordType::SRV] {
            self.remove_type(&fqdn, t).await;
        }
    }

    async fn remove_type(&self, name: &Name, record_type: RecordType) {
        self.zone
            .records_mut()
            .await
            .remove(&RrKey::new(LowerName::new(name), record_type));
    }

    /// Changes how queries are treated.
    pub fn set_mode(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    /// Queries received so far.
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::SeqCst)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
