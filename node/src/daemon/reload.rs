//! The node's part of a reload on SIGHUP: the audit line, written before the reload is applied
//! (the reload itself is `crate::reload`'s, which owns no engine).

use super::{Lane, Node, Result};

impl Node {
    /// Writes the audit line of a reload (action `reload`, by the node itself) with `subject`:
    /// the counts of what is about to be applied, or what was refused. Never a token or a hash.
    pub async fn audit_reload(&self, subject: String) -> Result<()> {
        self.call(Lane::Api, move |engine| {
            engine.audit_by_node(crate::audit::Action::Reload, &subject)
        })
        .await??;
        Ok(())
    }
}
