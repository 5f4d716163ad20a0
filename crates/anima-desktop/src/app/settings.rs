//! Settings: the account, the password, the preferences that follow it.

use super::*;

impl Controller {
    /// Shows the cached account: its name, profile and preferences.
    pub(super) async fn show_account(&self) {
        let Ok(Some(account)) = self.cache.get::<pb::User>(Kind::Account, "me").await else {
            return;
        };
        let preferences = Preferences::from_map(&account.preferences);
        if let Ok(mut state) = self.state.lock() {
            state.preferences = preferences;
        }
        self.ui(move |window| {
            window
                .set_user_name(format!("{} (@{})", account.display_name, account.username).into());
            window.set_profile_name(account.display_name.into());
            window.set_profile_email(account.email.into());
            window.set_projects_grid(preferences.projects_grid);
            window.set_notify_decisions(preferences.notify_decisions);
            window.set_notify_agents(preferences.notify_agents);
        });
    }

    /// Caches the signed-in account as the server now has it, and shows it.
    pub(super) async fn account_changed(&self, account: pb::User) {
        if let Err(err) = self
            .cache
            .upsert_record(Kind::Account, "", &account, |_| {
                ("me".into(), String::new())
            })
            .await
        {
            tracing::warn!("cannot cache the account: {err:#}");
        }
        self.show_account().await;
    }

    pub(super) async fn account(&self) -> Option<pb::User> {
        self.cache.get(Kind::Account, "me").await.ok().flatten()
    }

    pub(super) async fn save_profile(self: Arc<Self>, display_name: String, email: String) {
        let (Some(client), Some(account)) = (self.client(), self.account().await) else {
            return;
        };
        match client
            .update_profile(&account.id, display_name.trim(), email.trim())
            .await
        {
            Ok(account) => {
                self.notice("");
                self.account_changed(account).await;
                self.announcement("Profile saved.".into());
            }
            Err(status) => self.failed(&status),
        }
    }

    pub(super) async fn change_password(self: Arc<Self>, current: String, new: String) {
        let Some(client) = self.client() else { return };
        match client.change_password(&current, &new).await {
            Ok(()) => {
                self.notice("");
                self.announcement(
                    "Password changed; your other sessions have been signed out.".into(),
                );
            }
            Err(status) => self.failed(&status),
        }
    }

    /// Saves the preferences on the server (they follow the account);
    /// a refusal puts the switches back as they were.
    pub(super) async fn save_preferences(
        self: Arc<Self>,
        grid: bool,
        decisions: bool,
        agents: bool,
    ) {
        let (Some(client), Some(mut account)) = (self.client(), self.account().await) else {
            return;
        };
        let preferences = Preferences {
            projects_grid: grid,
            notify_decisions: decisions,
            notify_agents: agents,
        };
        preferences.merge_into(&mut account.preferences);
        match client
            .update_preferences(&account.id, account.preferences)
            .await
        {
            Ok(account) => self.account_changed(account).await,
            Err(status) => {
                self.failed(&status);
                self.show_account().await;
            }
        }
    }
}
