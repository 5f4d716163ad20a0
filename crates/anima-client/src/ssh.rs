//! The system `ssh` client for a sandbox login: what a client needs to
//! open the shell that GetLoginCredentials hands out.

use std::path::Path;

use ssh_key::PublicKey;

/// One-time credentials as an OpenSSH client needs them.
#[derive(Debug, Clone)]
pub struct ClientCredentials<'a> {
    /// Host to connect to.
    pub host: &'a str,
    /// Its port.
    pub port: i32,
    /// The login's username.
    pub username: &'a str,
    /// The OpenSSH private key.
    pub private_key_pem: &'a str,
    /// The server's host key line, the only one trusted.
    pub host_public_key: &'a str,
}

/// The system `ssh` client set up for `credentials`, with the caller's own
/// `options` (such as `-t`), running `command` if any: the
/// key and the server's host key are written into `dir` (keep it private
/// and remove it afterwards); host keys are checked strictly against that
/// one key. Nothing the server sent becomes an option: the username and
/// host are checked to be plain names, the host key is parsed and written
/// anew, and `--` ends the options before the destination.
pub fn openssh_client(
    dir: &Path,
    credentials: &ClientCredentials<'_>,
    options: &[&str],
    command: &[String],
) -> std::io::Result<std::process::Command> {
    use std::os::unix::fs::OpenOptionsExt;
    let refuse = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let plain = |value: &str, extra: &[u8]| {
        !value.is_empty()
            && value.len() <= 253
            && !value.starts_with('-')
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b) || extra.contains(&b))
    };
    if !plain(credentials.username, b"") {
        return Err(refuse(format!(
            "the server named the login user {:?}, which is not a plain name",
            credentials.username
        )));
    }
    if !plain(credentials.host, b":") {
        return Err(refuse(format!(
            "the server named the host {:?}, which is not a plain host name or address",
            credentials.host
        )));
    }
    let port = u16::try_from(credentials.port)
        .ok()
        .filter(|port| *port > 0)
        .ok_or_else(|| refuse(format!("the server named port {}", credentials.port)))?;
    let host_key = PublicKey::from_openssh(credentials.host_public_key.trim())
        .and_then(|key| key.to_openssh())
        .map_err(|err| refuse(format!("the server's host key: {err}")))?;
    let key = dir.join("login_key");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&key)?;
    std::io::Write::write_all(&mut file, credentials.private_key_pem.as_bytes())?;
    let known_hosts = dir.join("known_hosts");
    let host = if port == 22 {
        credentials.host.to_owned()
    } else {
        format!("[{}]:{port}", credentials.host)
    };
    std::fs::write(&known_hosts, format!("{host} {host_key}\n"))?;
    let mut ssh = std::process::Command::new("ssh");
    ssh.arg("-i")
        .arg(&key)
        .arg("-p")
        .arg(port.to_string())
        .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"])
        .args(["-o", "StrictHostKeyChecking=yes", "-o", "LogLevel=ERROR"])
        .args(["-o", "GlobalKnownHostsFile=/dev/null", "-o"])
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()));
    ssh.args(options)
        .arg("--")
        .arg(format!("{}@{}", credentials.username, credentials.host))
        .args(command);
    Ok(ssh)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ssh_key::{PrivateKey, private::Ed25519Keypair};

    #[test]
    fn nothing_the_server_sends_becomes_an_ssh_option() {
        let dir = tempfile::tempdir().expect("dir");
        let host_key = PrivateKey::from(Ed25519Keypair::from_seed(&[7; 32]))
            .public_key()
            .to_openssh()
            .expect("key");
        let good = ClientCredentials {
            host: "127.0.0.1",
            port: 2222,
            username: "login-ab12",
            private_key_pem: "",
            host_public_key: &host_key,
        };
        let injected = format!("{host_key}\n@cert-authority * {host_key}");
        for bad in [
            ClientCredentials {
                username: "-oProxyCommand=touch /tmp/x",
                ..good.clone()
            },
            ClientCredentials {
                host: "-oProxyCommand=x",
                ..good.clone()
            },
            ClientCredentials {
                host: "a b",
                ..good.clone()
            },
            ClientCredentials {
                port: 0,
                ..good.clone()
            },
            ClientCredentials {
                host_public_key: &injected,
                ..good.clone()
            },
        ] {
            assert!(
                openssh_client(dir.path(), &bad, &["-t"], &[]).is_err(),
                "{bad:?}"
            );
        }
        let ssh = openssh_client(dir.path(), &good, &["-t"], &["uptime".into()]).expect("client");
        let args: Vec<String> = ssh
            .get_args()
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args[args.len() - 3..],
            ["--", "login-ab12@127.0.0.1", "uptime"]
        );
    }
}
