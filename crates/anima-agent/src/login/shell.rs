//! One SSH connection into a sandbox: the login's key checked against the
//! credentials it was issued, a PTY shell in the session's sandbox, and
//! every byte each way on its way to the audit log, in order.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;

use russh::{
    Channel, ChannelId,
    server::{Auth, ChannelOpenHandle, Handle, Msg, PublicKeyOffer, Session, VerifiedPublicKey},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::watch,
};

use super::Logins;
use crate::audit::{Record, SharedRecord, opening};

/// Makes a connection handler per client.
pub(super) struct Door(pub(super) Arc<Logins>);

impl russh::server::Server for Door {
    type Handler = Connection;

    fn new_client(&mut self, peer: Option<SocketAddr>) -> Connection {
        Connection {
            logins: self.0.clone(),
            peer: peer.map(|peer| peer.to_string()).unwrap_or_default(),
            login: None,
            terminal: None,
            shell: None,
        }
    }
}

/// A logged-in user's sandbox.
struct Login {
    id: String,
    vm_id: String,
}

/// The terminal the client asked for.
struct Terminal {
    term: String,
    size: pty_process::Size,
}

/// The shell of a connection (one per login).
struct Shell {
    channel: ChannelId,
    input: pty_process::OwnedWritePty,
    record: SharedRecord,
    /// Dropped with the connection: the shell is killed.
    _hangup: tokio::sync::oneshot::Sender<()>,
}

/// One SSH client.
pub(super) struct Connection {
    logins: Arc<Logins>,
    peer: String,
    login: Option<Login>,
    terminal: Option<Terminal>,
    shell: Option<Shell>,
}

impl Connection {
    /// Starts the login's shell (or `command`) on a PTY in its sandbox.
    async fn open_shell(
        &mut self,
        channel: ChannelId,
        command: Option<&str>,
        session: &mut Session,
    ) -> anyhow::Result<()> {
        let login = self.login.as_ref().context("not logged in")?;
        anyhow::ensure!(self.shell.is_none(), "one shell per login");
        let term = self
            .terminal
            .as_ref()
            .map_or("dumb", |terminal| terminal.term.as_str());
        let ((argv, confinement), sandbox_gone) = {
            let mut running = self.logins.running.lock().await;
            let sandbox = running
                .get_mut(&login.vm_id)
                .context("the session's sandbox is gone")?;
            (sandbox.shell_command(command, term)?, sandbox.destroyed())
        };
        let (program, args) = argv.split_first().context("empty shell command")?;
        let (pty, pts) = pty_process::open()?;
        if let Some(terminal) = &self.terminal {
            pty.resize(terminal.size)?;
        }
        let child = confinement
            .apply_pty(pty_process::Command::new(program).args(args))
            .kill_on_drop(true)
            .spawn(pts)?;
        drop(confinement);
        let (output, input) = pty.into_split();

        let (record, audit_failed) =
            Record::start(&login.id, &self.peer, command, self.logins.audit.clone());
        let (hangup, hung_up) = tokio::sync::oneshot::channel();
        tokio::spawn(pump_output(
            output,
            child,
            session.handle(),
            channel,
            record.clone(),
            Ends {
                hung_up,
                sandbox_gone,
                audit_failed,
            },
        ));
        self.shell = Some(Shell {
            channel,
            input,
            record,
            _hangup: hangup,
        });
        session.channel_success(channel)?;
        Ok(())
    }

    fn shell_of(&mut self, channel: ChannelId) -> Option<&mut Shell> {
        self.shell.as_mut().filter(|shell| shell.channel == channel)
    }
}

/// What ends a shell besides its own exit.
struct Ends {
    /// The client went away.
    hung_up: tokio::sync::oneshot::Receiver<()>,
    /// The sandbox was destroyed.
    sandbox_gone: watch::Receiver<()>,
    /// The audit record cannot be kept (fail closed).
    audit_failed: watch::Receiver<bool>,
}

/// Returns once the record is failed (never, if it cannot fail any more).
async fn audit_failure(failed: &mut watch::Receiver<bool>) {
    if failed.wait_for(|failed| *failed).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Copies the shell's output to the client until it exits (or the client
/// or the sandbox goes), then reports its exit and closes the channel.
async fn pump_output(
    mut output: pty_process::OwnedReadPty,
    mut child: tokio::process::Child,
    handle: Handle,
    channel: ChannelId,
    record: SharedRecord,
    mut ends: Ends,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    let status = loop {
        tokio::select! {
            read = output.read(&mut buffer) => match read {
                Ok(n) if n > 0 => {
                    if let Ok(mut record) = record.lock() {
                        record.shown(&buffer[..n]);
                    }
                    if handle.data(channel, buffer[..n].to_vec()).await.is_err() {
                        let _ = child.start_kill();
                    }
                }
                // The PTY closes when the last process holding it is gone.
                _ => break child.wait().await,
            },
            status = child.wait() => {
                // What it wrote last may still be in the PTY.
                while let Ok(Ok(n)) =
                    tokio::time::timeout(Duration::from_millis(100), output.read(&mut buffer)).await
                {
                    if n == 0 || handle.data(channel, buffer[..n].to_vec()).await.is_err() {
                        break;
                    }
                    if let Ok(mut record) = record.lock() {
                        record.shown(&buffer[..n]);
                    }
                }
                break status;
            }
            _ = &mut ends.hung_up => {
                let _ = child.start_kill();
                break child.wait().await;
            }
            () = audit_failure(&mut ends.audit_failed) => {
                let _ = handle
                    .data(channel, b"\r\nthe audit log cannot be written: the shell ends\r\n".to_vec())
                    .await;
                let _ = child.start_kill();
                break child.wait().await;
            }
            _ = ends.sandbox_gone.changed() => {
                let _ = handle
                    .data(channel, b"\r\nthe session's sandbox was destroyed\r\n".to_vec())
                    .await;
                let _ = child.start_kill();
                break child.wait().await;
            }
        }
    };
    let exit_status = status.ok().and_then(|status| status.code()).unwrap_or(-1);
    if let Ok(mut record) = record.lock() {
        record.ended(exit_status);
    }
    let _ = handle
        .exit_status_request(channel, u32::try_from(exit_status).unwrap_or(255))
        .await;
    let _ = handle.eof(channel).await;
    let _ = handle.close(channel).await;
}

impl russh::server::Handler for Connection {
    type Error = russh::Error;

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(if self.logins.offered(user, offer.public_key) {
            Auth::Accept
        } else {
            Auth::reject()
        })
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let Some(vm_id) = self.logins.redeem(user, key.public_key) else {
            return Ok(Auth::reject());
        };
        // The server must know of the login before it opens.
        if let Err(err) = self.logins.audit.report(opening(user, &self.peer)).await {
            tracing::warn!(
                login = user,
                "refusing a login the audit log did not take: {err:#}"
            );
            return Ok(Auth::reject());
        }
        self.login = Some(Login {
            id: user.to_owned(),
            vm_id,
        });
        Ok(Auth::Accept)
    }

    async fn channel_open_session(
        &mut self,
        _channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.login.is_some() && self.shell.is_none() {
            reply.accept().await;
        } else {
            reply
                .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                .await;
        }
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        term: &str,
        col_width: u32,
        row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.terminal = Some(Terminal {
            term: term.to_owned(),
            size: pty_process::Size::new(
                u16::try_from(row_height).unwrap_or(u16::MAX).max(1),
                u16::try_from(col_width).unwrap_or(u16::MAX).max(1),
            ),
        });
        session.channel_success(channel)?;
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Err(err) = self.open_shell(channel, None, session).await {
            refuse(channel, session, &err)?;
        }
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let command = String::from_utf8_lossy(data).into_owned();
        if let Err(err) = self.open_shell(channel, Some(&command), session).await {
            refuse(channel, session, &err)?;
        }
        Ok(())
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(shell) = self.shell_of(channel) else {
            return Ok(());
        };
        // Input the record does not take never reaches the shell.
        if !shell
            .record
            .lock()
            .is_ok_and(|mut record| record.typed(data))
        {
            return Ok(());
        }
        // A shell that has just exited takes no more input; its end is
        // on its way to the client.
        if let Err(err) = shell.input.write_all(data).await {
            tracing::debug!(%err, "input to a login shell that ended");
        }
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        // The end of the client's input: the terminal's end-of-file key,
        // recorded like any other.
        if let Some(shell) = self.shell_of(channel)
            && shell
                .record
                .lock()
                .is_ok_and(|mut record| record.typed(&[0x04]))
            && let Err(err) = shell.input.write_all(&[0x04]).await
        {
            tracing::debug!(%err, "end of input to a login shell that ended");
        }
        Ok(())
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        col_width: u32,
        row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(shell) = self.shell_of(channel) {
            let size = pty_process::Size::new(
                u16::try_from(row_height).unwrap_or(u16::MAX).max(1),
                u16::try_from(col_width).unwrap_or(u16::MAX).max(1),
            );
            if let Err(err) = shell.input.resize(size) {
                tracing::debug!(%err, "cannot resize a login's terminal");
            }
        }
        Ok(())
    }
}

/// Tells the client why its shell did not start.
fn refuse(
    channel: ChannelId,
    session: &mut Session,
    err: &anyhow::Error,
) -> Result<(), russh::Error> {
    session.data(channel, format!("{err:#}\r\n").into_bytes())?;
    session.channel_failure(channel)?;
    session.close(channel)?;
    Ok(())
}
