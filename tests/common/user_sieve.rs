//! A user's own Sieve script in a test Dovecot, where Pigeonhole looks for it
//! (`sieve = file:~/sieve;active=~/.dovecot.sieve`): the script under `~/sieve/` and
//! the active symlink in the home, all owned by the mail user so Dovecot can compile
//! it on first delivery. Used to prove that coid leaves users' own rules working.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::Dovecot;
use super::process;

impl Dovecot {
    /// Installs `script` as the active personal Sieve script of `address`.
    pub fn install_user_sieve(&self, address: &str, script: &str) {
        let (local, domain) = address
            .split_once('@')
            .unwrap_or_else(|| panic!("`{address}` needs a domain"));
        let mail_root = self.dir().join("mail");
        let owner = std::fs::metadata(&mail_root)
            .unwrap_or_else(|e| panic!("{}: {e}", mail_root.display()));
        let (uid, gid) = (owner.uid(), owner.gid());
        let home = mail_root.join(domain).join(local);
        let sieve_dir = home.join("sieve");
        for dir in [&mail_root.join(domain), &home, &sieve_dir] {
            process::mkdir(dir);
            process::chown(dir, uid, gid);
        }
        let script_path = sieve_dir.join("personal.sieve");
        process::write_file(&script_path, script.as_bytes());
        process::chown(&script_path, uid, gid);
        let link = home.join(".dovecot.sieve");
        std::os::unix::fs::symlink(Path::new("sieve/personal.sieve"), &link)
            .unwrap_or_else(|e| panic!("symlink {}: {e}", link.display()));
        std::os::unix::fs::lchown(&link, Some(uid), Some(gid))
            .unwrap_or_else(|e| panic!("lchown {}: {e}", link.display()));
    }
}
