//! `coid doctor`'s checks of a live host: Postfix (from `postconf`), Dovecot (from
//! `doveconf -n`) and coid itself (sockets, state directory, database), each a pure
//! function from what the host said to a list of [`Finding`]s. Nothing here runs a
//! command, opens a file or a socket: the command line (`crate::cli::doctor`) gathers
//! those facts and hands them over as strings and small structs, so every check is
//! unit-tested with sample texts.
//!
//! A finding says what is wrong (or right) and, for a problem, the line to change.
//! [`Report::exit_code`] is 0 (all ok), 1 (warnings) or 2 (errors).

pub mod coid;
pub mod dovecot;
pub mod postfix;

use serde::Serialize;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Checked, and as it should be.
    Ok,
    /// Works, but not as well as it could (or not checked: the reason says why).
    Warning,
    /// Mail, METADATA or push does not work as it should.
    Error,
}

impl Severity {
    /// The word printed before a finding.
    pub fn word(self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// Which part of the path a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Area {
    /// Postfix's settings (`postconf`).
    Postfix,
    /// Dovecot's settings (`doveconf -n`) and coid's Sieve scripts.
    Dovecot,
    /// coid's sockets, state directory and database.
    Coid,
    /// Push services (only with `--network`).
    Network,
    /// The live round trip (`--send-test`).
    Roundtrip,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Where.
    pub area: Area,
    /// How bad.
    pub severity: Severity,
    /// What was found, naming the setting or file.
    pub what: String,
    /// The line to change (a command or a config line), for a problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Finding {
    /// A check that passed.
    pub fn ok(area: Area, what: impl Into<String>) -> Finding {
        Finding {
            area,
            severity: Severity::Ok,
            what: what.into(),
            fix: None,
        }
    }

    /// A warning with its fix.
    pub fn warning(area: Area, what: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            area,
            severity: Severity::Warning,
            what: what.into(),
            fix: Some(fix.into()).filter(|f: &String| !f.is_empty()),
        }
    }

    /// An error with its fix.
    pub fn error(area: Area, what: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            area,
            severity: Severity::Error,
            what: what.into(),
            fix: Some(fix.into()).filter(|f: &String| !f.is_empty()),
        }
    }
}

/// Every finding of one run.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// In the order the checks ran.
    pub findings: Vec<Finding>,
}

impl Report {
    /// The worst severity found (`Ok` for an empty report).
    pub fn worst(&self) -> Severity {
        self.findings
            .iter()
            .map(|f| f.severity)
            .max()
            .unwrap_or(Severity::Ok)
    }

    /// 0 all ok, 1 warnings, 2 errors.
    pub fn exit_code(&self) -> u8 {
        match self.worst() {
            Severity::Ok => 0,
            Severity::Warning => 1,
            Severity::Error => 2,
        }
    }

    /// For people: one line per finding, `fix:` under each problem, a summary.
    pub fn human(&self) -> String {
        let mut out = String::new();
        for f in &self.findings {
            let area = serde_json::to_value(f.area)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            out.push_str(&format!("{:<7} {area}: {}\n", f.severity.word(), f.what));
            if let Some(fix) = &f.fix {
                out.push_str(&format!("        fix: {fix}\n"));
            }
        }
        let count = |s| self.findings.iter().filter(|f| f.severity == s).count();
        out.push_str(&format!(
            "coid doctor: {} errors, {} warnings, {} ok\n",
            count(Severity::Error),
            count(Severity::Warning),
            count(Severity::Ok)
        ));
        out
    }

    /// For scripts: `{"status": "ok|warning|error", "findings": [...]}`.
    pub fn json(&self) -> String {
        serde_json::json!({ "status": self.worst(), "findings": self.findings }).to_string()
    }
}

/// The value of `name = value` on `line`, if that is the setting on it.
pub(crate) fn setting<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let (key, value) = line.split_once('=')?;
    (key.trim() == name).then(|| value.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_code_is_the_worst_finding() {
        let mut report = Report::default();
        assert_eq!(report.exit_code(), 0);
        report.findings.push(Finding::ok(Area::Coid, "fine"));
        assert_eq!(report.exit_code(), 0);
        report
            .findings
            .push(Finding::warning(Area::Postfix, "meh", "x"));
        assert_eq!(report.exit_code(), 1);
        report
            .findings
            .push(Finding::error(Area::Dovecot, "bad", "y"));
        assert_eq!(report.exit_code(), 2);
        let json: serde_json::Value = serde_json::from_str(&report.json()).expect("json");
        assert_eq!(json["status"], "error");
        assert_eq!(json["findings"][2]["area"], "dovecot");
        assert_eq!(json["findings"][2]["fix"], "y");
        assert!(
            report
                .human()
                .contains("error   dovecot: bad\n        fix: y\n")
        );
    }
}
