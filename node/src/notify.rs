//! The service manager's readiness protocol (`sd_notify`), without libsystemd: a datagram such
//! as `READY=1` sent to the Unix socket named by `NOTIFY_SOCKET`, which systemd sets for a
//! `Type=notify` unit. Without that variable nothing is sent, so the node runs the same under
//! any other supervisor or none.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::Path;

/// The environment variable naming the service manager's socket.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// The node is ready: own-feed recovery is done and it publishes (`/readyz` answers 200).
pub const READY: &str = "READY=1";

/// The node is stopping.
pub const STOPPING: &str = "STOPPING=1";

/// Sends `state` (newline-separated `KEY=value` assignments) to the socket `NOTIFY_SOCKET`
/// names. `Ok(false)` when the variable is not set: there is no service manager to tell.
pub fn notify(state: &str) -> io::Result<bool> {
    match std::env::var_os(NOTIFY_SOCKET) {
        Some(path) if !path.is_empty() => notify_to(Path::new(&path), state).map(|()| true),
        _ => Ok(false),
    }
}

/// Sends `state` to the datagram socket at `path`: a file path, or, starting with `@`, a name
/// in Linux's abstract namespace.
pub fn notify_to(path: &Path, state: &str) -> io::Result<()> {
    let socket = UnixDatagram::unbound()?;
    let bytes = path.as_os_str().as_encoded_bytes();
    let sent = match bytes.strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            socket.send_to_addr(state.as_bytes(), &address)?
        }
        None => socket.send_to(state.as_bytes(), path)?,
    };
    if sent == state.len() {
        Ok(())
    } else {
        Err(io::Error::new(io::ErrorKind::WriteZero, "the notification was cut short"))
    }
}

/// Tells the service manager `state`, logging (never failing on) a socket that cannot be
/// reached: readiness is the manager's convenience, not the node's condition.
pub fn tell(state: &str) {
    match notify(state) {
        Ok(true) => tracing::debug!(state, "service manager notified"),
        Ok(false) => {}
        Err(error) => tracing::warn!(state, %error, "the service manager could not be notified"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notification_reaches_a_socket_at_a_path() {
        let dir = std::env::temp_dir().join(format!("crossmatch-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let receiver = UnixDatagram::bind(&path).unwrap();
        receiver.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        notify_to(&path, READY).unwrap();
        notify_to(&path, STOPPING).unwrap();
        let mut buffer = [0u8; 64];
        let n = receiver.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..n], b"READY=1");
        let n = receiver.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..n], b"STOPPING=1");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_notification_reaches_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("crossmatch-notify-test-{}", std::process::id());
        let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let receiver = UnixDatagram::bind_addr(&address).unwrap();
        receiver.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        notify_to(Path::new(&format!("@{name}")), READY).unwrap();
        let mut buffer = [0u8; 64];
        let n = receiver.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..n], b"READY=1");
    }

    #[test]
    fn no_listener_is_an_error() {
        let path = std::env::temp_dir().join("crossmatch-notify-nobody-listens.sock");
        assert!(notify_to(&path, READY).is_err());
    }
}
