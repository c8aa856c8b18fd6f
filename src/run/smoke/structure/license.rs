//! `licenseTests` against the SBOM beside the tree: no package's declared license (nor the text of a license it refers to) and no named file may mention a license container-structure-test refuses (AGPL, WTFPL).

use std::path::Path;

use super::{Subject, expand, locate};
use crate::spec::structure::LicenseTest;

/// Words that fail a license, as container-structure-test has them.
const REFUSED: &[&str] = &["AGPL", "WTFPL"];
/// Packages it lets pass whatever their license says.
const ALLOWED: &[&str] = &["libgnutls30"];

/// The failures of a license test.
pub(super) fn judge(subject: &Subject, test: &LicenseTest) -> Vec<String> {
    let mut failures = Vec::new();
    if test.debian {
        match &subject.sbom {
            Some(path) => match sbom_failures(path) {
                Ok(found) => failures.extend(found),
                Err(e) => failures.push(format!("{e:#}")),
            },
            None => failures
                .push("no SBOM beside the tree to read the packages' licenses from".to_string()),
        }
    }
    for file in &test.files {
        let path = expand(file, &subject.config.env);
        let text =
            locate(&subject.root, Path::new(&path), true).map_err(|e| e.to_string()).and_then(
                |(_, host)| std::fs::read(&host).map_err(|e| format!("cannot read `{path}`: {e}")),
            );
        match text {
            Ok(bytes) => {
                let upper = String::from_utf8_lossy(&bytes).to_uppercase();
                for word in REFUSED.iter().filter(|w| upper.contains(*w)) {
                    failures.push(format!("`{path}` mentions {word}"));
                }
            }
            Err(why) => failures.push(why),
        }
    }
    failures
}

/// Each package of the SBOM whose declared license, or a license text it
/// refers to, mentions a refused license.
fn sbom_failures(path: &Path) -> anyhow::Result<Vec<String>> {
    use anyhow::Context;
    let bytes =
        std::fs::read(path).with_context(|| format!("reading the SBOM `{}`", path.display()))?;
    let sbom: serde_json::Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("parsing the SBOM `{}`", path.display()))?;
    let texts: std::collections::BTreeMap<&str, String> = sbom["hasExtractedLicensingInfos"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|info| {
            let id = info["licenseId"].as_str()?;
            let text = format!("{} {}", info["name"].as_str()?, info["extractedText"].as_str()?);
            Some((id, text.to_uppercase()))
        })
        .collect();
    let mut failures = Vec::new();
    for package in sbom["packages"].as_array().into_iter().flatten() {
        let name = package["name"].as_str().unwrap_or("");
        let declared = package["licenseDeclared"].as_str().unwrap_or("NOASSERTION");
        if package["SPDXID"] == "SPDXRef-Rootfs" || ALLOWED.contains(&name) {
            continue;
        }
        let mut text = declared.to_uppercase();
        for (id, extracted) in &texts {
            if declared.contains(id) {
                text.push_str(extracted);
            }
        }
        for word in REFUSED.iter().filter(|w| text.contains(*w)) {
            failures.push(format!("package {name}: its license ({declared}) mentions {word}"));
        }
    }
    Ok(failures)
}
