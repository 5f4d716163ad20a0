//! Conformance cases of the library.

use anima_core::{
    ErrorCode,
    document::{DocumentType, NewDocument, SearchText, StoredBlob, TextPart},
    error::reason,
    mail::{InboundState, MailFile, NewInbound},
    paging::PageRequest,
    planning::Actor,
};

use super::{
    mail::{inbound, new_mailbox, thread, work_item},
    new_user,
};
use crate::{DocumentFilter, Store};

fn page() -> PageRequest {
    PageRequest::parse(50, "", "documents").expect("page")
}

/// How the library would name `content`.
pub fn stored(content: &[u8]) -> StoredBlob {
    StoredBlob {
        sha256: anima_core::document::content_sha256(content),
        size_bytes: content.len() as i64,
    }
}

fn text(project_id: &str, title: &str, content: &str, by: &Actor) -> NewDocument {
    NewDocument {
        project_id: project_id.into(),
        work_item_id: None,
        title: title.into(),
        doc_type: DocumentType::Markdown,
        media_type: "text/markdown".into(),
        blob: stored(content.as_bytes()),
        text: SearchText::Text(content.into()),
        author: by.clone(),
    }
}

/// Documents name their bytes in the library by SHA-256 (the same bytes,
/// the same name, while any document names them), list by project and
/// work item, and are found by title or text.
pub async fn documents_name_their_bytes(store: &dyn Store) {
    let owner = store
        .create_user(new_user("librarian"))
        .await
        .expect("user");
    let by = Actor::User {
        id: owner.id.clone(),
    };
    let project = store
        .create_project("Library", "", &owner.id)
        .await
        .expect("project");
    let other = store
        .create_project("Other", "", &owner.id)
        .await
        .expect("project");
    let item = work_item(store, &project.id, &owner.id).await;

    let guide = store
        .create_document(NewDocument {
            work_item_id: Some(item.id.clone()),
            ..text(
                &project.id,
                "Export guide",
                "Run the EXPORT with --full; 100% of rows.",
                &by,
            )
        })
        .await
        .expect("create");
    assert_eq!(guide.size_bytes, 41);
    assert_eq!(guide.sha256.len(), 64);
    assert_eq!(guide.created_by, by);
    let copy = store
        .create_document(text(
            &project.id,
            "Copy",
            "Run the EXPORT with --full; 100% of rows.",
            &by,
        ))
        .await
        .expect("same bytes");
    assert_eq!(copy.sha256, guide.sha256);
    let binary = store
        .create_document(NewDocument {
            doc_type: DocumentType::Attachment,
            media_type: "application/octet-stream".into(),
            blob: stored(&[0, 159, 146, 150, 255]),
            text: SearchText::NotIndexed("no text is read from a binary file".into()),
            ..text(&project.id, "dump.bin", "", &by)
        })
        .await
        .expect("binary");
    assert_eq!(binary.size_bytes, 5);
    assert_eq!(
        binary.not_indexed_reason.as_deref(),
        Some("no text is read from a binary file"),
        "kept and listed, with the reason search has no text of it"
    );
    assert_eq!(guide.not_indexed_reason, None);
    assert_eq!(
        store
            .document_text(&guide.id)
            .await
            .expect("text")
            .as_deref(),
        Some("Run the EXPORT with --full; 100% of rows.")
    );
    assert_eq!(store.document_text(&binary.id).await.expect("text"), None);

    // Pages are cut in characters, not bytes, on both databases.
    let notes = store
        .create_document(text(&project.id, "Notizen", "Grüße aus Köln — 東京", &by))
        .await
        .expect("notes");
    let part = |offset: u64, max_chars: usize| {
        let id = notes.id.clone();
        async move {
            store
                .document_text_part(&id, offset, max_chars)
                .await
                .expect("part")
        }
    };
    assert_eq!(
        part(0, 5).await,
        TextPart {
            text: "Grüße".into(),
            total_chars: 19,
            next_offset: Some(5),
        }
    );
    assert_eq!(part(15, 100).await.text, "— 東京");
    assert_eq!(part(15, 100).await.next_offset, None);
    for far in [19, 10_000_000, u64::MAX] {
        assert_eq!(
            part(far, 3).await,
            TextPart {
                text: String::new(),
                total_chars: 19,
                next_offset: None,
            }
        );
    }
    assert_eq!(part(0, usize::MAX).await.text, "Grüße aus Köln — 東京");
    assert_eq!(
        store
            .document_text_part(&binary.id, 0, 10)
            .await
            .expect("no text"),
        TextPart {
            text: String::new(),
            total_chars: 0,
            next_offset: None,
        }
    );
    assert_eq!(store.get_document(&guide.id).await.expect("get"), guide);

    for (bad, code, why) in [
        (
            NewDocument {
                work_item_id: Some(item.id.clone()),
                ..text(&other.id, "elsewhere", "", &by)
            },
            ErrorCode::InvalidArgument,
            reason::INVALID_FIELD,
        ),
        (
            text("00000000-0000-7000-8000-00000000dead", "lost", "", &by),
            ErrorCode::NotFound,
            reason::PROJECT_NOT_FOUND,
        ),
    ] {
        let err = store.create_document(bad).await.expect_err("refused");
        assert_eq!((err.code, err.reason), (code, why));
    }

    let listed = |filter: DocumentFilter| async move {
        store
            .list_documents(&filter, &page())
            .await
            .expect("list")
            .items
            .into_iter()
            .map(|document| document.title)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        listed(DocumentFilter {
            project_id: Some(project.id.clone()),
            ..DocumentFilter::default()
        })
        .await,
        ["Export guide", "Copy", "dump.bin", "Notizen"]
    );
    assert_eq!(
        listed(DocumentFilter {
            work_item_id: Some(item.id.clone()),
            ..DocumentFilter::default()
        })
        .await,
        ["Export guide"]
    );

    store.delete_document(&guide.id, &by).await.expect("delete");
    assert!(
        store.names_blob(&copy.sha256).await.expect("named"),
        "the copy still names the bytes"
    );
    let err = store.get_document(&guide.id).await.expect_err("gone");
    assert_eq!(err.reason, reason::DOCUMENT_NOT_FOUND);
    let err = store.document_text(&guide.id).await.expect_err("gone");
    assert_eq!(err.reason, reason::DOCUMENT_NOT_FOUND);
    let err = store
        .document_text_part(&guide.id, 0, 10)
        .await
        .expect_err("gone");
    assert_eq!(err.reason, reason::DOCUMENT_NOT_FOUND);
    store.delete_document(&copy.id, &by).await.expect("delete");
    assert!(
        !store.names_blob(&copy.sha256).await.expect("named"),
        "no document names the bytes: the library's sweep may take them"
    );
    let err = store
        .delete_document(&copy.id, &by)
        .await
        .expect_err("twice");
    assert_eq!(err.reason, reason::DOCUMENT_NOT_FOUND);
}

/// A fetched mail's attachments become documents in the same write: on
/// the work item when posted, kept aside while held or in triage, moved
/// onto the item when assigned, and gone with a dismissed mail.
pub async fn mail_attachments_become_documents(store: &dyn Store) {
    let owner = store.create_user(new_user("attacher")).await.expect("user");
    let by = Actor::User {
        id: owner.id.clone(),
    };
    let project = store
        .create_project("Attached", "", &owner.id)
        .await
        .expect("project");
    let item = work_item(store, &project.id, &owner.id).await;
    let mailbox = store
        .create_mailbox(new_mailbox("files@shop.example", vec![project.id.clone()]))
        .await
        .expect("mailbox");
    let files = |name: &str| {
        let content = format!("contents of {name}");
        vec![MailFile {
            file_name: name.into(),
            media_type: "text/plain".into(),
            blob: stored(content.as_bytes()),
            text: SearchText::Text(content),
        }]
    };
    let on_item = || async {
        store
            .list_documents(
                &DocumentFilter {
                    work_item_id: Some(item.id.clone()),
                    ..DocumentFilter::default()
                },
                &page(),
            )
            .await
            .expect("list")
            .items
            .into_iter()
            .map(|document| document.title)
            .collect::<Vec<_>>()
    };

    let posted = NewInbound {
        work_item_id: Some(item.id.clone()),
        files: files("crash.log"),
        ..inbound(&mailbox.id, "a1@example.org", InboundState::Posted)
    };
    let (record, _) = store.receive_mail(posted.clone()).await.expect("post");
    let attachment = &record.content.attachments[0];
    assert_eq!(attachment.file_name, "crash.log");
    let document = store
        .get_document(&attachment.document_id)
        .await
        .expect("document");
    assert_eq!(document.sha256, stored(b"contents of crash.log").sha256);
    assert_eq!(
        store
            .document_text(&document.id)
            .await
            .expect("text")
            .as_deref(),
        Some("contents of crash.log"),
        "the attachment's text is kept"
    );
    assert_eq!(document.doc_type, DocumentType::Attachment);
    assert_eq!(
        document.created_by,
        Actor::Email {
            address: "ann@example.org".into()
        }
    );
    assert_eq!(
        thread(store, &item).await[0].attachments,
        record.content.attachments
    );
    let (again, new) = store.receive_mail(posted).await.expect("again");
    assert!(!new);
    assert_eq!(again, record);
    assert_eq!(on_item().await, ["crash.log"], "stored once");
    assert!(!document.awaits_review, "posted at once");

    let (triaged, _) = store
        .receive_mail(NewInbound {
            files: files("screenshot.txt"),
            ..inbound(&mailbox.id, "a2@example.org", InboundState::Triage)
        })
        .await
        .expect("triage");
    assert_eq!(
        on_item().await,
        ["crash.log"],
        "not on the item while in triage"
    );
    let awaits_review = |id: String| async move {
        store
            .get_document(&id)
            .await
            .expect("document")
            .awaits_review
    };
    let screenshot = triaged.content.attachments[0].document_id.clone();
    assert!(awaits_review(screenshot.clone()).await, "in triage");
    store
        .post_inbound(&triaged.id, &item.id, &by)
        .await
        .expect("assign");
    assert_eq!(on_item().await, ["crash.log", "screenshot.txt"]);
    assert!(!awaits_review(screenshot).await, "posted");

    let (held, _) = store
        .receive_mail(NewInbound {
            files: files("spam.txt"),
            ..inbound(&mailbox.id, "a3@example.org", InboundState::Held)
        })
        .await
        .expect("held");
    let spam = held.content.attachments[0].document_id.clone();
    assert!(awaits_review(spam.clone()).await, "kept for review");
    store.dismiss_inbound(&held.id, &by).await.expect("dismiss");
    let err = store.get_document(&spam).await.expect_err("gone");
    assert_eq!(err.reason, reason::DOCUMENT_NOT_FOUND);
}
