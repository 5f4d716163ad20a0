//! How every streamed upload is read (a document to DocumentService, a
//! blob to LibraryService): chunks of at most
//! [`MAX_UPLOAD_CHUNK`](anima_core::document::MAX_UPLOAD_CHUNK), a final
//! message marked `last`, and no long silence. A stream that breaks off,
//! stalls or ends without its last message yields an error, so whatever
//! consumes it stores nothing: a closed stream alone never means
//! "complete", because a client that fails mid-way may close it cleanly.

use std::time::Duration;

use anima_core::{DomainError, document::MAX_UPLOAD_CHUNK, error::reason};
use futures_util::{Stream, StreamExt, stream::BoxStream};
use tonic::{Code, Status};

use crate::v1 as pb;

/// The longest an upload may go without a message.
pub const UPLOAD_IDLE: Duration = Duration::from_secs(60);

/// A message of a streamed upload: its bytes, and whether it is the last.
pub trait UploadPart: Send + 'static {
    /// The bytes and the `last` mark.
    fn into_part(self) -> (Vec<u8>, bool);
}

impl UploadPart for pb::PutBlobRequest {
    fn into_part(self) -> (Vec<u8>, bool) {
        (self.chunk, self.last)
    }
}

impl UploadPart for pb::UploadDocumentRequest {
    fn into_part(self) -> (Vec<u8>, bool) {
        (self.content, self.last)
    }
}

fn interrupted(why: String) -> DomainError {
    DomainError::aborted(
        reason::UPLOAD_INTERRUPTED,
        format!("{why}; nothing was stored"),
    )
}

fn too_big_a_message() -> DomainError {
    DomainError::invalid_argument(
        reason::INVALID_FIELD,
        format!(
            "each message of an upload may carry at most {MAX_UPLOAD_CHUNK} bytes; \
             nothing was stored"
        ),
    )
}

/// What a failed read of an upload's stream means: a message over the
/// limit (tonic refuses it as `OUT_OF_RANGE`), else a stream that broke off.
pub fn broken_upload(status: &Status) -> DomainError {
    if status.code() == Code::OutOfRange {
        too_big_a_message()
    } else {
        interrupted(format!("the upload broke off ({})", status.message()))
    }
}

/// The bytes of an upload whose first message was read already (`first`),
/// then of `rest`, without empty chunks; an error ends it (see the module
/// documentation). `idle` is [`UPLOAD_IDLE`] outside tests.
pub fn upload_chunks<M: UploadPart>(
    first: M,
    rest: impl Stream<Item = Result<M, Status>> + Send + 'static,
    idle: Duration,
) -> BoxStream<'static, Result<Vec<u8>, DomainError>> {
    struct Reading<S> {
        rest: S,
        pending: Option<(Vec<u8>, bool)>,
        done: bool,
        /// When the upload is silent for too long: only bytes move it,
        /// so empty messages cannot keep an upload open.
        idle_at: tokio::time::Instant,
    }
    let state = Reading {
        rest: Box::pin(rest),
        pending: Some(first.into_part()),
        done: false,
        idle_at: tokio::time::Instant::now() + idle,
    };
    futures_util::stream::try_unfold(state, move |mut state| async move {
        loop {
            if state.done {
                return Ok(None);
            }
            let (chunk, last) = match state.pending.take() {
                Some(part) => part,
                None => match tokio::time::timeout_at(state.idle_at, state.rest.next()).await {
                    Err(_) => {
                        return Err(interrupted(format!(
                            "the upload sent nothing for {} s",
                            idle.as_secs()
                        )));
                    }
                    Ok(None) => {
                        return Err(interrupted(
                            "the upload ended without its last message".into(),
                        ));
                    }
                    Ok(Some(Err(status))) => return Err(broken_upload(&status)),
                    Ok(Some(Ok(message))) => message.into_part(),
                },
            };
            if chunk.len() > MAX_UPLOAD_CHUNK {
                return Err(too_big_a_message());
            }
            state.done = last;
            if !chunk.is_empty() {
                state.idle_at = tokio::time::Instant::now() + idle;
                return Ok(Some((chunk, state)));
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use futures_util::TryStreamExt;

    use super::*;

    fn part(chunk: &[u8], last: bool) -> pb::PutBlobRequest {
        pb::PutBlobRequest {
            chunk: chunk.to_vec(),
            max_bytes: 0,
            last,
        }
    }

    async fn read(
        first: pb::PutBlobRequest,
        rest: impl Stream<Item = Result<pb::PutBlobRequest, Status>> + Send + 'static,
    ) -> Result<Vec<Vec<u8>>, String> {
        upload_chunks(first, rest, Duration::from_millis(50))
            .try_collect()
            .await
            .map_err(|error: DomainError| error.reason.to_owned())
    }

    #[tokio::test]
    async fn an_upload_is_complete_only_with_its_last_message() {
        let whole = read(
            part(b"a", false),
            futures_util::stream::iter([Ok(part(b"", false)), Ok(part(b"b", true))]),
        )
        .await;
        assert_eq!(whole, Ok(vec![b"a".to_vec(), b"b".to_vec()]));
        assert_eq!(
            read(part(b"only", true), futures_util::stream::pending()).await,
            Ok(vec![b"only".to_vec()]),
            "nothing is read after the last message"
        );
        assert_eq!(
            read(
                part(b"a", false),
                futures_util::stream::iter([Ok(part(b"b", false))])
            )
            .await,
            Err("UPLOAD_INTERRUPTED".into()),
            "a stream closed before its last message broke off"
        );
        assert_eq!(
            read(
                part(b"a", false),
                futures_util::stream::iter([Err(Status::cancelled("gone"))])
            )
            .await,
            Err("UPLOAD_INTERRUPTED".into())
        );
        assert_eq!(
            read(part(b"a", false), futures_util::stream::pending()).await,
            Err("UPLOAD_INTERRUPTED".into()),
            "a stalled upload"
        );
        let empty_forever =
            futures_util::stream::iter(std::iter::repeat_with(|| Ok(part(b"", false)))).then(
                |message| async {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    message
                },
            );
        assert_eq!(
            read(part(b"a", false), empty_forever).await,
            Err("UPLOAD_INTERRUPTED".into()),
            "empty messages do not keep an upload open"
        );
        assert_eq!(
            read(
                part(&vec![0; MAX_UPLOAD_CHUNK + 1], true),
                futures_util::stream::pending()
            )
            .await,
            Err("INVALID_FIELD".into())
        );
        assert_eq!(
            read(
                part(b"a", false),
                futures_util::stream::iter([Err(Status::out_of_range(
                    "decoded message too large"
                ))])
            )
            .await,
            Err("INVALID_FIELD".into())
        );
    }
}
