//! Writing an email from a work item.

use super::*;

impl Controller {
    pub(super) async fn send_email(self: Arc<Self>, to: String, subject: String, body: String) {
        let work_item = self.open_item_id();
        let (Some(client), Some(work_item)) = (self.client(), work_item) else {
            return;
        };
        let to: Vec<String> = to
            .split(',')
            .map(str::trim)
            .filter(|address| !address.is_empty())
            .map(str::to_owned)
            .collect();
        match client
            .send_email(&work_item, to, subject.trim(), &body)
            .await
        {
            Ok(message) => {
                self.notice("");
                self.cache_message(&message).await;
                self.show_thread(&work_item).await;
            }
            Err(status) => self.failed(&status),
        }
    }
}
