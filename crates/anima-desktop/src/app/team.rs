//! The team: members and their roles.

use super::*;

impl Controller {
    pub(super) async fn show_team(&self) {
        let users: Vec<pb::User> = self.cache.list(Kind::User, "").await.unwrap_or_default();
        let members: Vec<pb::ProjectMember> =
            self.cache.list_all(Kind::Member).await.unwrap_or_default();
        let projects: Vec<pb::Project> =
            self.cache.list(Kind::Project, "").await.unwrap_or_default();
        self.ui(move |window| {
            window.set_people(viewmodel::rows(viewmodel::people_rows(
                &users, &members, &projects,
            )))
        });
    }

    /// The accounts and every project's members.
    pub(super) async fn load_team(self: Arc<Self>) {
        self.show_team().await;
        let Some(client) = self.client() else { return };
        let users = match client.users().await {
            Ok(users) => users,
            Err(status) => return self.failed(&status),
        };
        if let Err(err) = self
            .cache
            .replace_records(Kind::User, "", &users, |user| {
                (user.id.clone(), user.username.clone())
            })
            .await
        {
            tracing::warn!("cannot cache users: {err:#}");
        }
        let projects: Vec<pb::Project> =
            self.cache.list(Kind::Project, "").await.unwrap_or_default();
        for project in projects {
            let members = match client.members(&project.id).await {
                Ok(members) => members,
                Err(status) => return self.failed(&status),
            };
            let key = |member: &pb::ProjectMember| {
                (
                    format!("{}:{}", member.project_id, member.user_id),
                    member.username.clone(),
                )
            };
            if let Err(err) = self
                .cache
                .replace_records(Kind::Member, &project.id, &members, key)
                .await
            {
                tracing::warn!("cannot cache members: {err:#}");
            }
        }
        self.show_team().await;
    }

    /// Adds a user to a project with a role (or changes it), or removes
    /// them; each is named as a person would (username, project name, role
    /// name).
    pub(super) async fn change_member(
        self: Arc<Self>,
        username: String,
        project: String,
        role: String,
        remove: bool,
    ) {
        let Some(client) = self.client() else { return };
        let users: Vec<pb::User> = self.cache.list(Kind::User, "").await.unwrap_or_default();
        let projects: Vec<pb::Project> =
            self.cache.list(Kind::Project, "").await.unwrap_or_default();
        let (username, project, role) = (username.trim(), project.trim(), role.trim());
        let Some(user) = users.iter().find(|user| user.username == username) else {
            return self.notice(format!("no user is named {username:?}"));
        };
        let Some(project) = projects
            .iter()
            .find(|candidate| candidate.name.eq_ignore_ascii_case(project))
        else {
            return self.notice(format!("no project is named {project:?}"));
        };
        let changed = if remove {
            client.remove_member(&project.id, &user.id).await
        } else {
            let roles = match client.roles().await {
                Ok(roles) => roles,
                Err(status) => return self.failed(&status),
            };
            let Some(role) = roles
                .iter()
                .find(|candidate| candidate.name.eq_ignore_ascii_case(role))
            else {
                return self.notice(format!("no role is named {role:?}"));
            };
            client
                .add_member(&project.id, &user.id, &role.id)
                .await
                .map(drop)
        };
        match changed {
            Ok(()) => {
                self.notice("");
                self.load_team().await;
            }
            Err(status) => self.failed(&status),
        }
    }
}
