//! The audit record of a login shell: the raw bytes that crossed its
//! terminal (typed and shown), with their times, sent to anima-server as
//! the shell goes. Nothing is re-assembled: a replay shows exactly what the
//! user sent and saw, line editing, escape sequences and all.
//!
//! The record fails closed: when the server does not take it (after a few
//! tries), or too much of it waits unsent, the shell is ended and no more
//! input reaches it.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use anima_core::agent::MAX_TERMINAL_EVENT_BYTES;
use anima_proto::v1::{self as pb, agent_audit_service_client::AgentAuditServiceClient};
use async_trait::async_trait;
use tokio::sync::{Notify, watch};
use tonic::{
    metadata::{Ascii, MetadataValue},
    transport::Channel as GrpcChannel,
};

/// Most bytes of a record that may wait unsent before the shell is ended.
const MAX_BACKLOG_BYTES: usize = 8 << 20;

/// How long a reporter gathers events before it sends them.
const GATHER: Duration = Duration::from_millis(50);

/// Tries per report before the record is given up as failed.
const REPORT_TRIES: u32 = 5;

/// Most event bytes one report carries (well under the server's message
/// limit); a larger backlog goes out in several.
const MAX_REPORT_BYTES: usize = 1 << 20;

/// Where logins are reported: the server's audit log.
#[async_trait]
pub trait AuditSink: Send + Sync + 'static {
    /// Stores a report of a login: its state and the events it carries.
    async fn report(&self, report: pb::LoginReport) -> anyhow::Result<()>;
}

/// anima-server's AgentAuditService, reached with a service token.
pub struct ServerAudit {
    client: AgentAuditServiceClient<GrpcChannel>,
    authorization: MetadataValue<Ascii>,
}

impl ServerAudit {
    /// The service at `url` (connected on first use).
    pub fn new(url: &str, token: &str) -> anyhow::Result<Self> {
        let channel = GrpcChannel::from_shared(url.to_owned())
            .map_err(|err| anyhow::anyhow!("server URL {url:?}: {err}"))?
            .connect_lazy();
        Ok(Self {
            client: AgentAuditServiceClient::new(channel),
            authorization: format!("Bearer {token}")
                .parse()
                .map_err(|_| anyhow::anyhow!("the server token is not a valid header value"))?,
        })
    }
}

#[async_trait]
impl AuditSink for ServerAudit {
    async fn report(&self, report: pb::LoginReport) -> anyhow::Result<()> {
        let mut request = tonic::Request::new(report);
        request
            .metadata_mut()
            .insert("authorization", self.authorization.clone());
        self.client
            .clone()
            .report_login(request)
            .await
            .map_err(|status| anyhow::anyhow!("reporting a login: {}", status.message()))?;
        Ok(())
    }
}

/// A timestamp for now.
pub fn now() -> prost_types::Timestamp {
    let since_epoch = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    prost_types::Timestamp {
        seconds: i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(since_epoch.subsec_nanos()).unwrap_or(0),
    }
}

/// The start of a login's record, before its shell opens.
pub fn opening(login_id: &str, peer: &str) -> pb::LoginReport {
    pb::LoginReport {
        login_id: login_id.to_owned(),
        start_time: Some(now()),
        peer: peer.to_owned(),
        ..pb::LoginReport::default()
    }
}

/// The record of one open shell.
pub struct Record {
    /// Its state (no events: those wait in `unsent`).
    state: pb::LoginReport,
    opened: Instant,
    /// Events not yet taken by the sink, the first numbered `first_unsent`.
    unsent: Vec<pb::TerminalEvent>,
    unsent_bytes: usize,
    first_unsent: i64,
    /// A report is failing: input waits until one goes through.
    blocked: bool,
    /// Wakes the reporter.
    changed: Arc<Notify>,
    /// Set once the record cannot be kept: the shell must end.
    failed: Arc<watch::Sender<bool>>,
}

/// A shared record, and what watches it.
pub type SharedRecord = Arc<Mutex<Record>>;

impl Record {
    /// Starts the record of a shell of `login_id` (opened from `peer`),
    /// and its reporter to `sink`. The receiver turns true when the record
    /// cannot be kept.
    pub fn start(
        login_id: &str,
        peer: &str,
        command: Option<&str>,
        sink: Arc<dyn AuditSink>,
    ) -> (SharedRecord, watch::Receiver<bool>) {
        let mut state = opening(login_id, peer);
        state.commands.extend(command.map(str::to_owned));
        let (failed, failures) = watch::channel(false);
        let record = Arc::new(Mutex::new(Self {
            state,
            opened: Instant::now(),
            unsent: Vec::new(),
            unsent_bytes: 0,
            first_unsent: 0,
            blocked: false,
            changed: Arc::new(Notify::new()),
            failed: Arc::new(failed),
        }));
        tokio::spawn(report_continuously(record.clone(), sink));
        (record, failures)
    }

    /// Takes what the user typed into the record; whether it may reach
    /// the shell: not once the shell ended, nor while the record is
    /// failing (what is refused is not recorded).
    pub fn typed(&mut self, bytes: &[u8]) -> bool {
        if self.has_ended() || self.blocked || self.failed() {
            return false;
        }
        self.state.bytes_in += i64::try_from(bytes.len()).unwrap_or(i64::MAX);
        self.add(pb::TerminalStream::Input, bytes);
        !self.failed()
    }

    /// What the shell showed.
    pub fn shown(&mut self, bytes: &[u8]) {
        self.state.bytes_out += i64::try_from(bytes.len()).unwrap_or(i64::MAX);
        self.add(pb::TerminalStream::Output, bytes);
    }

    /// The shell ended with `exit_status`.
    pub fn ended(&mut self, exit_status: i32) {
        self.state.end_time = Some(now());
        self.state.exit_status = Some(exit_status);
        self.changed.notify_one();
    }

    /// Whether the shell has ended.
    fn has_ended(&self) -> bool {
        self.state.end_time.is_some()
    }

    /// Whether the record could not be kept.
    pub fn failed(&self) -> bool {
        *self.failed.borrow()
    }

    fn add(&mut self, stream: pb::TerminalStream, bytes: &[u8]) {
        let offset_micros = i64::try_from(self.opened.elapsed().as_micros()).unwrap_or(i64::MAX);
        for chunk in bytes.chunks(MAX_TERMINAL_EVENT_BYTES) {
            self.unsent.push(pb::TerminalEvent {
                offset_micros,
                stream: stream as i32,
                data: chunk.to_vec(),
            });
            self.unsent_bytes += chunk.len();
        }
        if self.unsent_bytes > MAX_BACKLOG_BYTES {
            tracing::warn!(login = %self.state.login_id, "the audit log falls behind; ending the shell");
            self.failed.send_replace(true);
        }
        self.changed.notify_one();
    }

    /// The next report: the state and the oldest unsent events, up to
    /// [`MAX_REPORT_BYTES`] (at least one); how many it carries.
    fn next_report(&self) -> (pb::LoginReport, usize) {
        let mut bytes = 0;
        let count = self
            .unsent
            .iter()
            .take_while(|event| {
                bytes += event.data.len();
                bytes <= MAX_REPORT_BYTES
            })
            .count()
            .max(usize::from(!self.unsent.is_empty()));
        let report = pb::LoginReport {
            events: self.unsent[..count].to_vec(),
            first_event_seq: self.first_unsent,
            // The end only once every event is in.
            end_time: self.state.end_time.filter(|_| count == self.unsent.len()),
            exit_status: self
                .state
                .exit_status
                .filter(|_| count == self.unsent.len()),
            ..self.state.clone()
        };
        (report, count)
    }

    /// The sink took the first `count` unsent events.
    fn taken(&mut self, count: usize) {
        let taken: usize = self
            .unsent
            .drain(..count)
            .map(|event| event.data.len())
            .sum();
        self.unsent_bytes -= taken;
        self.first_unsent += i64::try_from(count).unwrap_or(i64::MAX);
    }
}

/// Sends the record as it grows until its last state has gone out; gives
/// up (and fails the record) after [`REPORT_TRIES`] failed tries.
async fn report_continuously(record: SharedRecord, sink: Arc<dyn AuditSink>) {
    let Some(changed) = record.lock().ok().map(|record| record.changed.clone()) else {
        return;
    };
    loop {
        changed.notified().await;
        tokio::time::sleep(GATHER).await;
        let Some((report, count)) = record.lock().ok().map(|record| record.next_report()) else {
            return;
        };
        let mut sent = false;
        for attempt in 1..=REPORT_TRIES {
            match sink.report(report.clone()).await {
                Ok(()) => {
                    sent = true;
                    break;
                }
                Err(err) => {
                    tracing::warn!(login = %report.login_id, attempt, "{err:#}");
                    if let Ok(mut record) = record.lock() {
                        record.blocked = true;
                    }
                    tokio::time::sleep(Duration::from_millis(200) * attempt).await;
                }
            }
        }
        let Ok(mut record) = record.lock() else {
            return;
        };
        if !sent {
            record.failed.send_replace(true);
            return;
        }
        record.blocked = false;
        record.taken(count);
        if record.has_ended() && record.unsent.is_empty() {
            return;
        }
        if !record.unsent.is_empty() {
            changed.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keeps every report; refuses them all once told to.
    #[derive(Default)]
    struct Kept {
        reports: Mutex<Vec<pb::LoginReport>>,
        refuse: std::sync::atomic::AtomicBool,
    }

    #[async_trait]
    impl AuditSink for Kept {
        async fn report(&self, report: pb::LoginReport) -> anyhow::Result<()> {
            anyhow::ensure!(
                !self.refuse.load(std::sync::atomic::Ordering::SeqCst),
                "the audit log is down"
            );
            self.reports.lock().expect("lock").push(report);
            Ok(())
        }
    }

    impl Kept {
        /// Every report, once the one with the end has come (a bound,
        /// not a speed requirement).
        async fn until_ended(&self) -> Vec<pb::LoginReport> {
            for _ in 0..200 {
                let reports = self.reports.lock().expect("lock").clone();
                if reports
                    .last()
                    .is_some_and(|report| report.exit_status.is_some())
                {
                    return reports;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            panic!("the record never ended");
        }
    }

    #[tokio::test]
    async fn every_byte_is_sent_once_in_order() {
        let sink = Arc::new(Kept::default());
        let (record, failures) = Record::start("login-x", "peer", None, sink.clone());
        for (input, bytes) in [
            (true, &b"ls\x7f\x17"[..]),
            (false, b"ls\r\n"),
            (true, b"\x1b[A"),
        ] {
            let mut record = record.lock().expect("lock");
            if input {
                assert!(record.typed(bytes));
            } else {
                record.shown(bytes);
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        record.lock().expect("lock").shown(b"done");
        record.lock().expect("lock").ended(0);
        let reports = sink.until_ended().await;
        let mut next = 0;
        let mut typed = Vec::new();
        let mut shown = Vec::new();
        for report in &reports {
            assert_eq!(report.first_event_seq, next, "no gap, no repeat");
            next += i64::try_from(report.events.len()).unwrap_or(0);
            for event in &report.events {
                if event.stream == pb::TerminalStream::Input as i32 {
                    typed.extend_from_slice(&event.data);
                } else {
                    shown.extend_from_slice(&event.data);
                }
            }
        }
        assert_eq!(typed, b"ls\x7f\x17\x1b[A");
        assert_eq!(shown, b"ls\r\ndone");
        assert_eq!(reports.last().and_then(|r| r.exit_status), Some(0));
        assert!(!*failures.borrow());
    }

    #[tokio::test]
    async fn a_record_the_sink_refuses_fails() {
        let sink = Arc::new(Kept::default());
        sink.refuse.store(true, std::sync::atomic::Ordering::SeqCst);
        let (record, mut failures) = Record::start("login-y", "peer", None, sink);
        assert!(record.lock().expect("lock").typed(b"rm -rf /workspace\r"));
        tokio::time::timeout(Duration::from_secs(30), failures.wait_for(|failed| *failed))
            .await
            .expect("failed in time")
            .expect("failure seen");
        assert!(record.lock().expect("lock").failed());
        assert!(
            !record.lock().expect("lock").typed(b"more"),
            "no input once the record failed"
        );
    }

    #[tokio::test]
    async fn a_large_backlog_goes_out_in_pieces_and_nothing_is_typed_after_the_end() {
        let sink = Arc::new(Kept::default());
        let (record, _failures) = Record::start("login-z", "peer", None, sink.clone());
        {
            let mut record = record.lock().expect("lock");
            record.shown(&vec![b'x'; 3 * MAX_REPORT_BYTES]);
            record.ended(0);
            assert!(!record.typed(b"after the end"));
        }
        let reports = sink.until_ended().await;
        assert!(reports.len() >= 3, "{} reports", reports.len());
        for report in &reports {
            let bytes: usize = report.events.iter().map(|event| event.data.len()).sum();
            assert!(bytes <= MAX_REPORT_BYTES, "{bytes}");
        }
        let shown: usize = reports
            .iter()
            .flat_map(|report| &report.events)
            .map(|event| event.data.len())
            .sum();
        assert_eq!(shown, 3 * MAX_REPORT_BYTES);
        assert!(
            reports[..reports.len() - 1]
                .iter()
                .all(|report| report.end_time.is_none()),
            "the end comes with the last piece"
        );
    }
}
