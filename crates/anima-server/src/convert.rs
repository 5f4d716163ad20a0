//! Domain records to wire messages.

use anima_core::model::{Role, User};
use anima_proto::v1 as pb;
use prost_types::Timestamp;

/// Microseconds since the epoch as a protobuf timestamp.
pub fn timestamp(micros: i64) -> Option<Timestamp> {
    Some(Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: i32::try_from(micros.rem_euclid(1_000_000) * 1_000).unwrap_or(0),
    })
}

/// A user on the wire (never with a password hash: the record has none).
pub fn user(user: User) -> pb::User {
    pb::User {
        id: user.id,
        username: user.username,
        display_name: user.display_name,
        email: user.email,
        is_admin: user.is_admin,
        disabled: user.disabled,
        create_time: timestamp(user.created_at),
        update_time: timestamp(user.updated_at),
        preferences: user.preferences.into_iter().collect(),
    }
}

/// A role on the wire.
pub fn role(role: Role) -> pb::Role {
    pb::Role {
        id: role.id,
        name: role.name,
        description: role.description,
        permissions: role
            .permissions
            .iter()
            .map(|p| p.as_str().to_owned())
            .collect(),
        builtin: role.builtin,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_split_micros() {
        let ts = timestamp(1_700_000_000_123_456).expect("some");
        assert_eq!((ts.seconds, ts.nanos), (1_700_000_000, 123_456_000));
        let ts = timestamp(-1).expect("some");
        assert_eq!((ts.seconds, ts.nanos), (-1, 999_999_000));
    }
}
