//! The config's `[webhook]` section: where alerts are delivered (Standard Webhooks), checked
//! when the config loads; the signing keys file (`whsec_…` lines, 0600); and the new key that
//! `crossmatch webhook-secret new` writes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use super::Error;
use crate::daemon::WebhookSettings;
use crate::engine::EVENT_LOG_KEEP;
use crate::http_client::{Client, TlsFiles, check_url};
use crate::keyfile;

/// The prefix of a signing key's line.
pub const WEBHOOK_SECRET_PREFIX: &str = "whsec_";
/// Fewest and most bytes of a signing key.
pub const WEBHOOK_SECRET_BYTES: std::ops::RangeInclusive<usize> = 24..=64;

fn default_max_queue() -> u64 {
    10_000
}
fn default_timeout_secs() -> u64 {
    10
}
fn default_max_backoff_secs() -> u64 {
    300
}

/// `[webhook]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSection {
    /// `https://…`, or `http://` to a loopback address.
    pub url: String,
    /// The signing keys: one or two lines of `whsec_<base64>`, the current key first (0600).
    pub secret_file: PathBuf,
    /// Most events queued (1 to the event log's size); beyond, the oldest are dropped.
    #[serde(default = "default_max_queue")]
    pub max_queue: u64,
    /// Longest one attempt may take to be answered (1 to 300 s).
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Longest wait between attempts (1 to 86,400 s).
    #[serde(default = "default_max_backoff_secs")]
    pub max_backoff_secs: u64,
    /// Roots to trust for `https://` instead of the system's (PEM).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// A client certificate for `https://` (PEM), with its key.
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// The client certificate's key (PEM, 0600).
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
}

impl WebhookSection {
    /// The files it names, for resolving relative paths.
    pub(super) fn files(&mut self) -> Vec<&mut PathBuf> {
        let optional = [&mut self.ca_file, &mut self.client_cert_file, &mut self.client_key_file];
        let mut files = vec![&mut self.secret_file];
        files.extend(optional.into_iter().flatten());
        files
    }

    /// Checks the section and reads its keys: the settings the node runs with.
    pub fn settings(&self, config_path: &Path) -> Result<WebhookSettings, Error> {
        let invalid = |message: String| Error::Invalid { path: config_path.to_owned(), message };
        check_url(&self.url).map_err(|error| invalid(format!("webhook.url: {error}")))?;
        if !(1..=EVENT_LOG_KEEP).contains(&self.max_queue)
            || !(1..=300).contains(&self.timeout_secs)
            || !(1..=86_400).contains(&self.max_backoff_secs)
        {
            return Err(invalid(format!(
                "webhook: max_queue is 1 to {EVENT_LOG_KEEP}, timeout_secs 1 to 300 and \
                 max_backoff_secs 1 to 86400"
            )));
        }
        if self.client_cert_file.is_some() != self.client_key_file.is_some() {
            return Err(invalid(
                "webhook: client_cert_file and client_key_file go together".to_owned(),
            ));
        }
        let tls = TlsFiles {
            ca_file: self.ca_file.clone(),
            client_cert: self.client_cert_file.clone(),
            client_key: self.client_key_file.clone(),
        };
        // The client is built once here, so a CA file, client certificate or key that cannot
        // be used fails the load rather than the deliveries.
        Client::new(&self.url, &tls).map_err(|error| invalid(format!("webhook: {error}")))?;
        let text = keyfile::read_private_text(&self.secret_file)?;
        let keys = parse_webhook_secrets(&text).map_err(|message| Error::Invalid {
            path: self.secret_file.clone(),
            message: message.to_owned(),
        })?;
        Ok(WebhookSettings {
            url: self.url.clone(),
            keys,
            max_queue: self.max_queue,
            timeout: Duration::from_secs(self.timeout_secs),
            max_backoff: Duration::from_secs(self.max_backoff_secs),
            tls,
            bodies: crate::api::WEBHOOK_BODIES,
        })
    }
}

/// The keys of a signing keys file: one or two lines of `whsec_<base64, standard, padded>`,
/// each 24 to 64 bytes; blank lines are ignored. The message never quotes the file.
pub fn parse_webhook_secrets(text: &str) -> Result<Vec<Vec<u8>>, &'static str> {
    const MESSAGE: &str = "holds one or two lines of whsec_<base64>, each key 24 to 64 bytes \
                           (crossmatch webhook-secret new)";
    let mut keys = Vec::new();
    for line in text.lines().map(str::trim).filter(|line| !line.is_empty()) {
        let encoded = line.strip_prefix(WEBHOOK_SECRET_PREFIX).ok_or(MESSAGE)?;
        let key = STANDARD.decode(encoded).map_err(|_| MESSAGE)?;
        if !WEBHOOK_SECRET_BYTES.contains(&key.len()) {
            return Err(MESSAGE);
        }
        keys.push(key);
    }
    if keys.is_empty() || keys.len() > 2 {
        return Err(MESSAGE);
    }
    Ok(keys)
}

/// A new signing key's line: 32 random bytes, `whsec_<base64>`.
pub fn new_webhook_secret() -> std::io::Result<String> {
    let key = keyfile::random_32()?;
    Ok(format!("{WEBHOOK_SECRET_PREFIX}{}\n", STANDARD.encode(key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_files_hold_one_or_two_keys_of_24_to_64_bytes() {
        let one = new_webhook_secret().unwrap();
        assert_eq!(parse_webhook_secrets(&one).unwrap()[0].len(), 32);
        let two = format!("{one}\n{}", new_webhook_secret().unwrap());
        assert_eq!(parse_webhook_secrets(&two).unwrap().len(), 2);
        let three = format!("{two}{one}");
        assert!(parse_webhook_secrets(&three).is_err());
        assert!(parse_webhook_secrets("").is_err());
        assert!(parse_webhook_secrets("whsec_%%%").is_err());
        let short = format!("whsec_{}", STANDARD.encode([1u8; 23]));
        assert!(parse_webhook_secrets(&short).is_err());
        let long = format!("whsec_{}", STANDARD.encode([1u8; 65]));
        assert!(parse_webhook_secrets(&long).is_err());
        let unprefixed = STANDARD.encode([1u8; 32]);
        assert!(parse_webhook_secrets(&unprefixed).is_err());
        // The spec's example key is accepted.
        assert!(parse_webhook_secrets("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
    }
    #[test]
    fn the_section_refuses_plain_http_off_loopback_and_an_open_key_file() {
        use std::os::unix::fs::PermissionsExt;

        let dir = std::env::temp_dir().join(format!("webhook-section-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let secret_file = dir.join("webhook.secret");
        let _ = std::fs::remove_file(&secret_file);
        keyfile::write_private_text(&secret_file, &new_webhook_secret().unwrap()).unwrap();
        let section = |url: &str| WebhookSection {
            url: url.to_owned(),
            secret_file: secret_file.clone(),
            max_queue: 10_000,
            timeout_secs: 10,
            max_backoff_secs: 300,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
        };
        let config = dir.join("node.toml");
        let settings = section("http://127.0.0.1:9000/hook").settings(&config).unwrap();
        assert_eq!((settings.keys.len(), settings.max_queue), (1, 10_000));
        assert!(section("https://hooks.example/x").settings(&config).is_ok());
        for refused in ["http://192.0.2.1/hook", "ftp://hooks.example/", "https://u:p@h.example/"] {
            assert!(section(refused).settings(&config).is_err(), "{refused}");
        }
        let mut zero = section("https://hooks.example/x");
        zero.max_queue = 0;
        assert!(zero.settings(&config).is_err());
        std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let open = section("https://hooks.example/x").settings(&config).unwrap_err();
        assert!(open.to_string().contains("644"), "{open}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_section_refuses_a_ca_file_client_certificate_or_key_the_client_cannot_use() {
        use std::os::unix::fs::PermissionsExt;

        let dir = std::env::temp_dir().join(format!("webhook-client-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let secret_file = dir.join("webhook.secret");
        keyfile::write_private_text(&secret_file, &new_webhook_secret().unwrap()).unwrap();
        let signed = rcgen::generate_simple_self_signed(vec!["hooks.example".to_owned()]).unwrap();
        let (cert_file, key_file) = (dir.join("client.pem"), dir.join("client.key"));
        std::fs::write(&cert_file, signed.cert.pem()).unwrap();
        keyfile::write_private_text(&key_file, &signed.key_pair.serialize_pem()).unwrap();
        let section = |url: &str, ca_file: Option<PathBuf>, client: bool| WebhookSection {
            url: url.to_owned(),
            secret_file: secret_file.clone(),
            max_queue: 10_000,
            timeout_secs: 10,
            max_backoff_secs: 300,
            ca_file,
            client_cert_file: client.then(|| cert_file.clone()),
            client_key_file: client.then(|| key_file.clone()),
        };
        let config = dir.join("node.toml");
        let url = "https://hooks.example/x";
        assert!(section(url, Some(cert_file.clone()), true).settings(&config).is_ok());
        let missing = section(url, Some(dir.join("missing.pem")), false).settings(&config);
        assert!(missing.unwrap_err().to_string().contains("missing.pem"));
        let not_pem = section(url, Some(secret_file.clone()), false).settings(&config);
        assert!(not_pem.is_err(), "a CA file without a certificate");
        let plain = section("http://127.0.0.1:9000/hook", None, true).settings(&config);
        assert!(plain.unwrap_err().to_string().contains("https://"));
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let open = section(url, Some(cert_file.clone()), true).settings(&config).unwrap_err();
        assert!(open.to_string().contains("client.key"), "{open}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
