//! Who may call the API: roles, named users found by the hash of their bearer token (the token
//! itself is never stored), and the `User` extractor that every guarded handler takes.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, RwLock};

use axum::extract::FromRequestParts;
use axum::http::{StatusCode, header, request::Parts};
use serde::{Deserialize, Serialize};

use super::Api;
use super::error::{ApiError, ApiResult};

/// Domain of the stored hash of a bearer token.
pub const TOKEN_HASH_CONTEXT: &str = "crossmatch api token v1";
/// Prefix of every bearer token, so a leaked one is easy to recognise and scan for.
pub const TOKEN_PREFIX: &str = "cmt_";

/// What an API user may do; each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Health, status and metrics.
    Monitor,
    /// Records and alerts.
    Analyst,
    /// Fork evidence.
    Admin,
}

impl Role {
    /// Every role, from the least to the most it may do.
    pub const ALL: [Self; 3] = [Self::Monitor, Self::Analyst, Self::Admin];

    /// The role's name in the tokens file, on the command line and in messages.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Monitor => "monitor",
            Self::Analyst => "analyst",
            Self::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|role| role.as_str() == s).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|role| role.as_str()).collect();
            format!("a role is one of {}", names.join(", "))
        })
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A named API user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The name the audit log records.
    pub name: String,
    /// What the user may do.
    pub role: Role,
}

impl User {
    /// `403` unless the user's role includes `role`.
    pub(super) fn require(&self, role: Role) -> ApiResult<()> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("this needs the {role} role"),
            ))
        }
    }
}

/// The API's users, by the hash of their bearer token.
#[derive(Clone, Default)]
pub struct Users(Arc<HashMap<[u8; 32], User>>);

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.values().map(|user| &user.name)).finish()
    }
}

impl Users {
    /// Users from (token hash, user) pairs.
    pub fn new(users: impl IntoIterator<Item = ([u8; 32], User)>) -> Self {
        Self(Arc::new(users.into_iter().collect()))
    }

    pub(super) fn find(&self, bearer: &str) -> Option<&User> {
        self.0.get(&token_hash(bearer))
    }

    /// How many users there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is no user at all (then every guarded request is refused).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The API's users as a running API reads them: one per request, so that a reload (SIGHUP)
/// swaps them whole, without a restart. Clones share the same users.
#[derive(Clone, Default)]
pub struct UsersHandle(Arc<RwLock<Users>>);

impl std::fmt::Debug for UsersHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("UsersHandle").field(&self.current()).finish()
    }
}

impl UsersHandle {
    /// A handle on `users`.
    pub fn new(users: Users) -> Self {
        Self(Arc::new(RwLock::new(users)))
    }

    /// The users now (a cheap clone: they are shared).
    pub fn current(&self) -> Users {
        self.0.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Puts `users` in place of the current ones, whole: a request sees either the old users or
    /// the new ones.
    pub fn replace(&self, users: Users) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = users;
    }
}

impl From<Users> for UsersHandle {
    fn from(users: Users) -> Self {
        Self::new(users)
    }
}

/// The stored form of a bearer token.
pub fn token_hash(bearer: &str) -> [u8; 32] {
    blake3::derive_key(TOKEN_HASH_CONTEXT, bearer.as_bytes())
}

/// A new random bearer token: [`TOKEN_PREFIX`] and 256 bits in hex.
pub fn new_bearer_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("{TOKEN_PREFIX}{}", hex::encode(bytes)))
}

/// The user of a request's bearer token; anything else is a `401`, counted.
impl FromRequestParts<Api> for User {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Api) -> ApiResult<Self> {
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        let users = api.users.current();
        match bearer.and_then(|bearer| users.find(bearer.trim())) {
            Some(user) => Ok(user.clone()),
            None => {
                api.auth_failures.fetch_add(1, Ordering::Relaxed);
                Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "a valid bearer token is needed",
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_agree_everywhere() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
            // The tokens file reads roles through serde: the same names.
            let quoted = format!("\"{}\"", role.as_str());
            assert_eq!(serde_json::from_str::<Role>(&quoted).unwrap(), role);
            assert_eq!(serde_json::to_string(&role).unwrap(), quoted);
        }
        assert_eq!("root".parse::<Role>(), Err("a role is one of monitor, analyst, admin".into()));
    }
}
