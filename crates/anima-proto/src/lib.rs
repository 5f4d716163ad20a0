//! Generated protobuf messages, tonic clients and servers for the Anima API
//! (`proto/anima/v1`), and how a domain error travels on the wire
//! ([`status`]) and a capability ([`capability`]), which every service
//! shares; how people spell a workflow phase ([`phase`]); the service-token
//! gate of the internal services ([`service_auth`]); how streamed uploads
//! are read ([`upload`]).

pub mod capability;
pub mod convert;
pub mod phase;
pub mod service_auth;
pub mod status;
pub mod upload;

/// Version 1 of the Anima API.
pub mod v1 {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("anima.v1");
}

impl v1::ModelTier {
    /// The tier as configuration and messages spell it: `minimal`,
    /// `standard`, `reasoning` (`unspecified` for the zero value).
    pub fn name(self) -> &'static str {
        match self {
            v1::ModelTier::Unspecified => "unspecified",
            v1::ModelTier::Minimal => "minimal",
            v1::ModelTier::Standard => "standard",
            v1::ModelTier::Reasoning => "reasoning",
        }
    }
}

/// The encoded `FileDescriptorSet` of every Anima proto file, for gRPC
/// reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/anima_descriptor.bin"));
