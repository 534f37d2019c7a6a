//! The `lingerd ctl` side of the ctl socket: connect, send one request,
//! read replies until the last.
//!
//! [`CtlClient`] owns the connection; it decodes what the daemon sends as
//! carefully as the daemon decodes requests (bounded buffer, version
//! first; a capture's binary batches are checked whole before they are
//! handed on). It may not print: the command line renders.

use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::Duration;

use rustix::net::{
    AddressFamily, RecvFlags, SendFlags, SocketAddrUnix, SocketFlags, SocketType, connect,
    socket_with, sockopt,
};

use lingerd_dataplane::capture::batch::{self, Batch};

use super::proto::{self, Body, Request};

/// One message of a capture session ([`CtlClient::next_message`]).
#[derive(Debug)]
pub enum Message<'a> {
    /// A JSON reply.
    Reply(Body),
    /// A batch of captured packets, checked.
    Batch(Batch<'a>),
}

/// Why a ctl exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// The socket cannot be reached.
    #[error("cannot reach the daemon at {path}: {source}{hint}")]
    Connect {
        /// The socket path.
        path: String,
        /// Why.
        source: io::Error,
        /// What to check.
        hint: &'static str,
    },
    /// The connection failed midway.
    #[error("ctl socket: {0}")]
    Io(#[from] io::Error),
    /// The daemon hung up before its last reply.
    #[error("the daemon closed the ctl connection before answering in full")]
    HungUp,
    /// The daemon sent something we cannot read.
    #[error("{0}")]
    Protocol(String),
}

/// One ctl connection.
#[derive(Debug)]
pub struct CtlClient {
    fd: OwnedFd,
    buf: Vec<u8>,
}

impl CtlClient {
    /// Connects to the ctl socket at `path`; a reply that takes longer
    /// than `timeout` (None: wait for ever, e.g. a paced kill) fails.
    pub fn connect(path: &Path, timeout: Option<Duration>) -> Result<CtlClient, CtlError> {
        let fail = |source: io::Error| {
            let hint = match source.raw_os_error() {
                Some(e) if e == rustix::io::Errno::NOENT.raw_os_error() => {
                    " (is `lingerd run` running with this configuration?)"
                }
                Some(e) if e == rustix::io::Errno::ACCESS.raw_os_error() => {
                    " (the ctl socket is 0600: run as root or as the daemon's user)"
                }
                Some(e) if e == rustix::io::Errno::CONNREFUSED.raw_os_error() => {
                    " (a stale socket: the daemon is not running)"
                }
                _ => "",
            };
            CtlError::Connect {
                path: path.display().to_string(),
                source,
                hint,
            }
        };
        let addr = SocketAddrUnix::new(path).map_err(|e| fail(e.into()))?;
        let fd = socket_with(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| fail(e.into()))?;
        connect(&fd, &addr).map_err(|e| fail(e.into()))?;
        sockopt::set_socket_timeout(&fd, sockopt::Timeout::Recv, timeout)
            .map_err(io::Error::from)?;
        Ok(CtlClient {
            fd,
            buf: vec![0u8; proto::MAX_REPLY],
        })
    }

    /// Sends the request.
    pub fn send(&mut self, request: &Request) -> Result<(), CtlError> {
        let bytes = proto::encode(request);
        rustix::net::send(&self.fd, &bytes, SendFlags::NOSIGNAL).map_err(io::Error::from)?;
        Ok(())
    }

    /// The next reply's body.
    pub fn next_reply(&mut self) -> Result<Body, CtlError> {
        self.reply_within()?.ok_or_else(|| {
            CtlError::Io(io::Error::new(
                io::ErrorKind::TimedOut,
                "no answer from the daemon in time",
            ))
        })
    }

    /// The next reply's body, or `None` when none came within the
    /// connection's timeout (a caller that has other things to watch, such
    /// as Ctrl-C, connects with a short one and asks again).
    pub fn reply_within(&mut self) -> Result<Option<Body>, CtlError> {
        let Some(got) = self.receive()? else {
            return Ok(None);
        };
        let bytes = self.buf.get(..got).unwrap_or_default();
        proto::decode_reply(bytes)
            .map(|r| Some(r.body))
            .map_err(CtlError::Protocol)
    }

    /// The next message of a capture session, `None` when none came
    /// within the connection's timeout.
    pub fn next_message(&mut self) -> Result<Option<Message<'_>>, CtlError> {
        let Some(got) = self.receive()? else {
            return Ok(None);
        };
        let bytes = self.buf.get(..got).unwrap_or_default();
        if bytes.starts_with(&batch::MAGIC) {
            return Batch::parse(bytes)
                .map(|b| Some(Message::Batch(b)))
                .map_err(|e| CtlError::Protocol(e.to_string()));
        }
        proto::decode_reply(bytes)
            .map(|r| Some(Message::Reply(r.body)))
            .map_err(CtlError::Protocol)
    }

    /// Tells the daemon this end sends nothing more (a capture then ends,
    /// and its last batches and figures still arrive).
    pub fn shutdown_send(&self) -> Result<(), CtlError> {
        rustix::net::shutdown(&self.fd, rustix::net::Shutdown::Write).map_err(io::Error::from)?;
        Ok(())
    }

    /// One message into the buffer: its length, `None` on the receive
    /// timeout.
    fn receive(&mut self) -> Result<Option<usize>, CtlError> {
        let (got, real) = loop {
            match rustix::net::recv(&self.fd, &mut self.buf, RecvFlags::TRUNC) {
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::AGAIN) => return Ok(None),
                Err(e) => return Err(CtlError::Io(e.into())),
                Ok(r) => break r,
            }
        };
        if real == 0 {
            return Err(CtlError::HungUp);
        }
        if real > got {
            return Err(CtlError::Protocol(format!(
                "a reply of {real} bytes is longer than {} bytes",
                proto::MAX_REPLY
            )));
        }
        Ok(Some(got))
    }
}
