//! Conformance cases of skill bundles.

use anima_core::{
    ErrorCode,
    error::reason,
    paging::PageRequest,
    planning::Actor,
    skill::{NewSkill, SkillFile},
};

use super::new_user;
use crate::Store;

fn version(version: &str, files: &[(&str, &str)]) -> NewSkill {
    NewSkill {
        name: "code-reading".into(),
        version: version.into(),
        description: "How to read a codebase".into(),
        manifest: format!(r#"{{"entry": "SKILL.md", "version": "{version}"}}"#),
        files: files
            .iter()
            .map(|(path, text)| SkillFile {
                path: (*path).into(),
                content: text.as_bytes().to_vec(),
            })
            .collect(),
        author: "admin".into(),
    }
}

/// Versions are published once and never change; the newest is what an
/// unpinned reference gets; files shared with the library outlive their
/// documents.
pub async fn skills_are_versioned_and_immutable(store: &dyn Store) {
    let published = store
        .publish_skill(version(
            "1.0.0",
            &[
                ("SKILL.md", "Start at main."),
                ("tools/map.sh", "find . -name '*.rs'"),
            ],
        ))
        .await
        .expect("publish");
    assert_eq!((published.file_count, published.size_bytes), (2, 33));
    assert_eq!(published.files.len(), 2);

    let err = store
        .publish_skill(version("1.0.0", &[("SKILL.md", "changed")]))
        .await
        .expect_err("versions never change");
    assert_eq!(
        (err.code, err.reason),
        (ErrorCode::AlreadyExists, reason::SKILL_VERSION_EXISTS)
    );
    let err = store
        .publish_skill(version("2.0.0", &[("../escape", "x")]))
        .await
        .expect_err("unsafe path");
    assert_eq!(err.reason, reason::INVALID_FIELD);
    assert_eq!(
        store
            .get_skill("code-reading", "2.0.0")
            .await
            .expect_err("nothing stored")
            .reason,
        reason::SKILL_NOT_FOUND
    );

    // The same text as a library document: handing documents' old bytes
    // to the library, or deleting the document, keeps the skill's file.
    let owner = store.create_user(new_user("skilled")).await.expect("user");
    let project = store
        .create_project("Skills", "", &owner.id)
        .await
        .expect("project");
    let by = Actor::User { id: owner.id };
    let document = store
        .create_document(anima_core::document::NewDocument {
            project_id: project.id,
            work_item_id: None,
            title: "notes".into(),
            doc_type: anima_core::document::DocumentType::Markdown,
            media_type: "text/plain".into(),
            blob: super::document::stored(b"Start at main."),
            text: anima_core::document::SearchText::Text("Start at main.".into()),
            author: by.clone(),
        })
        .await
        .expect("document");
    let (legacy, _) = store
        .next_legacy_blob("")
        .await
        .expect("legacy")
        .expect("the skill's row holds the document's bytes");
    assert_eq!(legacy, document.sha256);
    store.forget_legacy_blob(&legacy).await.expect("forget");
    store
        .delete_document(&document.id, &by)
        .await
        .expect("delete");

    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    store
        .publish_skill(version("0.9.0", &[("SKILL.md", "Start at main.")]))
        .await
        .expect("a later publication of a lower version");
    let newest = store.get_skill("code-reading", "").await.expect("newest");
    assert_eq!(newest.version, "0.9.0", "newest means last published");
    let first = store
        .get_skill("code-reading", "1.0.0")
        .await
        .expect("pinned");
    let files: Vec<(&str, &[u8])> = first
        .files
        .iter()
        .map(|file| (file.path.as_str(), file.content.as_slice()))
        .collect();
    assert_eq!(
        files,
        [
            ("SKILL.md", b"Start at main.".as_slice()),
            ("tools/map.sh", b"find . -name '*.rs'".as_slice())
        ]
    );
    assert!(first.manifest.contains("1.0.0"));

    store
        .publish_skill(NewSkill {
            name: "testing".into(),
            ..version("1.0.0", &[])
        })
        .await
        .expect("another skill");
    let mut page = PageRequest::parse(2, "", "skills").expect("page");
    let mut listed = Vec::new();
    loop {
        let found = store.list_skills(None, &page).await.expect("list");
        assert!(found.items.iter().all(|skill| skill.files.is_empty()));
        listed.extend(
            found
                .items
                .into_iter()
                .map(|skill| format!("{}@{}", skill.name, skill.version)),
        );
        if found.next_page_token.is_empty() {
            break;
        }
        page = PageRequest::parse(2, &found.next_page_token, "skills").expect("next");
    }
    assert_eq!(
        listed,
        ["code-reading@0.9.0", "code-reading@1.0.0", "testing@1.0.0"]
    );
    let only = store
        .list_skills(
            Some("testing"),
            &PageRequest::parse(0, "", "t").expect("page"),
        )
        .await
        .expect("by name");
    assert_eq!(only.items.len(), 1);
}
