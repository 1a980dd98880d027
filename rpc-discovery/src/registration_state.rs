//! Where a server's registration stands, while [`ServeRegistered`](crate::ServeRegistered)
//! serves it: not yet registered (and why), registered, or deregistered.

use tokio::sync::watch;

use crate::error::DiscoveryError;

/// Where the registration of a server started by
/// [`ServeRegistered::serve`](crate::ServeRegistered::serve) stands.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistrationState {
    /// Serving, not registered yet: the registry failed `attempts` times so far (0 while the
    /// first attempt is under way), the last time with `last_error`.
    Registering {
        /// Failed attempts so far.
        attempts: u32,
        /// Why the last attempt failed.
        last_error: Option<String>,
    },
    /// The registry accepted the instance. Keeping it registered is then the registry's job
    /// (etcd renews the lease, and grants a new one if it expired during an outage).
    Registered,
    /// Serving ended, or is ending: the instance was deregistered, or never registered.
    Deregistered,
}

/// A view of a server's [`RegistrationState`], from
/// [`ServeRegistered::status`](crate::ServeRegistered::status). Cheap to clone.
#[derive(Debug, Clone)]
pub struct RegistrationStatus {
    pub(crate) rx: watch::Receiver<RegistrationState>,
}

impl RegistrationStatus {
    /// The current state.
    pub fn state(&self) -> RegistrationState {
        self.rx.borrow().clone()
    }

    /// `true` while the instance is registered.
    pub fn is_registered(&self) -> bool {
        *self.rx.borrow() == RegistrationState::Registered
    }

    /// Waits for a state newer than the last one this view returned, and returns it.
    ///
    /// # Errors
    /// [`DiscoveryError::Closed`] once serving has ended and no change can come.
    pub async fn changed(&mut self) -> Result<RegistrationState, DiscoveryError> {
        self.rx
            .changed()
            .await
            .map_err(|_| DiscoveryError::Closed)?;
        Ok(self.rx.borrow_and_update().clone())
    }

    /// Waits until the instance is registered.
    ///
    /// # Errors
    /// [`DiscoveryError::Closed`] if serving ends first.
    pub async fn registered(&mut self) -> Result<(), DiscoveryError> {
        let state = self
            .rx
            .wait_for(|s| !matches!(s, RegistrationState::Registering { .. }))
            .await
            .map_err(|_| DiscoveryError::Closed)?
            .clone();
        match state {
            RegistrationState::Registered => Ok(()),
            _ => Err(DiscoveryError::Closed),
        }
    }
}
