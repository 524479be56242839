//! The stack's child processes: spawned with the stack's environment and logging to its log
//! folder, checked, signalled, stopped.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::bail;
use tracing::info;

use super::LocalStack;
use crate::process::Service;

impl LocalStack {
    pub(super) fn spawn(&self, name: &str, command: Command) -> anyhow::Result<()> {
        self.spawn_with(name, command, &[])
    }

    /// Spawns with the stack's environment, `overrides` applied last, logging to
    /// `<log_dir>/<name>.log`.
    pub(super) fn spawn_with(
        &self,
        name: &str,
        command: Command,
        overrides: &[(String, String)],
    ) -> anyhow::Result<()> {
        let log = self.log_of(name);
        self.spawn_logging_to(name, command, overrides, &log)
    }

    /// [`Self::spawn_with`], logging to `log`.
    pub(super) fn spawn_logging_to(
        &self,
        name: &str,
        mut command: Command,
        overrides: &[(String, String)],
        log: &std::path::Path,
    ) -> anyhow::Result<()> {
        command
            .envs(&self.env)
            .envs(overrides.iter().cloned())
            .env("PATH", self.tools.path_env())
            .current_dir(&self.tools.root);
        let service = Service::spawn_logging_to(name, command, log)?;
        info!(service = name, pid = service.pid(), log = %service.log.display(), "started");
        self.services
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .insert(name.into(), service);
        Ok(())
    }

    pub(super) fn check(&self, name: &str) -> anyhow::Result<()> {
        let mut services = self
            .services
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?;
        match services.get_mut(name) {
            Some(s) => s.check_running(),
            None => bail!("{name} is not started"),
        }
    }

    /// Fails if any started process has exited.
    pub fn check_all(&self) -> anyhow::Result<()> {
        let names: Vec<String> = self
            .services
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .keys()
            .cloned()
            .collect();
        names.iter().try_for_each(|n| self.check(n))
    }

    /// The process id of service `name`, while it runs (benchmarks read its memory).
    pub fn pid_of(&self, name: &str) -> Option<u32> {
        let services = self.services.lock().ok()?;
        services.get(name).map(Service::pid)
    }

    /// The log file of service `name`.
    pub fn log_of(&self, name: &str) -> PathBuf {
        self.options.log_dir.join(format!("{name}.log"))
    }

    /// SIGKILLs the poller: no chance to store its cursor.
    pub fn kill_poller(&self) -> anyhow::Result<()> {
        self.kill_service("poller")
    }

    /// SIGKILLs service `name`, if it runs.
    pub fn kill_service(&self, name: &str) -> anyhow::Result<()> {
        let mut services = self
            .services
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?;
        if let Some(mut service) = services.remove(name) {
            service.kill();
        }
        Ok(())
    }

    /// Sends SIGTERM to service `name` without waiting for it to exit (a drain under test);
    /// [`Self::has_exited`] tells when it has.
    pub fn terminate_service(&self, name: &str) -> anyhow::Result<()> {
        let services = self
            .services
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?;
        let service = services
            .get(name)
            .ok_or_else(|| anyhow::anyhow!("{name} is not started"))?;
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(service.pid().to_string())
            .status()?;
        anyhow::ensure!(status.success(), "kill -TERM {name} failed");
        Ok(())
    }

    /// Whether service `name` has exited (it is then forgotten, so it can be started again).
    pub fn has_exited(&self, name: &str) -> anyhow::Result<bool> {
        let mut services = self
            .services
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?;
        let exited = services.get_mut(name).is_none_or(|s| !s.is_running());
        if exited {
            services.remove(name);
        }
        Ok(exited)
    }

    /// Stops one service with SIGTERM (e.g. to break a hop in a test).
    pub fn stop_service(&self, name: &str) -> anyhow::Result<()> {
        let mut services = self
            .services
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?;
        if let Some(mut s) = services.remove(name) {
            s.stop(Duration::from_secs(5));
        }
        Ok(())
    }
}
