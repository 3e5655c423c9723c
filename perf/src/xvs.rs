//! xvswitchd under test: started as our child (parent-death signal SIGTERM) inside the switch's
//! namespace, queried through its control socket with the `control` crate's client.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::bail;
use crate::util::{self, Result};

pub const BRIDGE: &str = "br0";

pub struct Xvs {
    child: Option<Child>,
    pub ctl: PathBuf,
    pub log: PathBuf,
    /// The bridge's OpenFlow management socket (`RUNDIR/br0.mgmt`).
    pub mgmt: PathBuf,
}

pub struct XvsOpts<'a> {
    pub bin: &'a Path,
    pub ns: Option<&'a str>,
    pub rundir: &'a Path,
    pub ports: &'a [String],
    pub pmd_cpus: &'a [usize],
    /// `--pmd-idle`: `busy` (measure forwarding) or `sleep` (control-plane scenarios).
    pub idle: &'a str,
    pub extra: &'a [String],
}

impl Xvs {
    pub fn start(o: &XvsOpts) -> Result<Xvs> {
        std::fs::create_dir_all(o.rundir)
            .map_err(|e| format!("mkdir {}: {e}", o.rundir.display()))?;
        let log = o.rundir.join("xvswitchd.log");
        let f = std::fs::File::create(&log).map_err(|e| format!("log file: {e}"))?;
        let mut c = util::ns_cmd(o.ns, o.bin);
        c.arg("--rundir").arg(o.rundir).args(["--bridge", BRIDGE]);
        for p in o.ports {
            c.args(["--port", p]);
        }
        let cpus: Vec<String> = o.pmd_cpus.iter().map(|c| c.to_string()).collect();
        c.args(["--pmd-cpus", &cpus.join(",")])
            .args(["--pmd-idle", o.idle])
            .arg("--pidfile")
            .arg(o.rundir.join("xvswitchd.pid"))
            .args(o.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::from(
                f.try_clone().map_err(|e| format!("log file: {e}"))?,
            ))
            .stderr(Stdio::from(f));
        util::guard_child(&mut c, libc::SIGTERM);
        let desc = util::describe(&c);
        let child = c.spawn().map_err(|e| format!("cannot start {desc}: {e}"))?;
        let mut x = Xvs {
            child: Some(child),
            ctl: o.rundir.join("xvswitchd.ctl"),
            log,
            mgmt: o.rundir.join(format!("{BRIDGE}.mgmt")),
        };
        let ports = o.ports.to_vec();
        let r = util::wait_for(Duration::from_secs(15), || {
            if let Some(ch) = x.child.as_mut() {
                if let Ok(Some(st)) = ch.try_wait() {
                    return Some(Err(st.to_string()));
                }
            }
            let s = x.call("dpif/show", &[]).ok()?;
            ports
                .iter()
                .all(|p| s.contains(p.as_str()))
                .then_some(Ok(s))
        })?;
        match r {
            Some(Ok(_)) => Ok(x),
            Some(Err(st)) => bail!(
                "xvswitchd exited ({st}) during startup: {desc}\n{}",
                util::tail(&x.log, 15)
            ),
            None => bail!(
                "xvswitchd did not get ready in 15 s: {desc}\n{}",
                util::tail(&x.log, 15)
            ),
        }
    }

    pub fn call(&self, method: &str, params: &[&str]) -> Result<String> {
        let p: Vec<String> = params.iter().map(|s| s.to_string()).collect();
        control::client::call(&self.ctl, method, &p, Some(Duration::from_secs(10)))
            .map_err(|e| util::Error::Msg(format!("xvswitchd {method}: {e}")))
    }

    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    /// True while the daemon runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            util::stop_child(&mut c, libc::SIGTERM, Duration::from_secs(5));
        }
    }
}

impl Drop for Xvs {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `xvswitchd --version`, first line.
pub fn version(bin: &Path) -> Option<String> {
    let o = std::process::Command::new(bin)
        .arg("--version")
        .output()
        .ok()?;
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .next()
        .map(str::to_string)
}
