//! Structure tests (container-structure-test files): each kind of assertion misses once and says what it expected and what it saw, with the same rows against the tree and against its exported OCI image; distroless's own python3 and java files run unchanged against our presets, every test that applies to a rootfs passing.

use std::path::{Path, PathBuf};

use crate::presets::work_dir;
use crate::support::{can_enter, project_root, rootfs_cli};

/// Where distroless's test files are kept, with their license.
const DISTROLESS: &str = "tests/data/structure/distroless";

/// One row of a JUnit report: the test's name, and `pass` or the kind
/// (`failure`, `error`) with its message.
type Row = (String, String);

/// The rows of a JUnit report written by `--junit`, in order.
fn junit_rows(path: &Path) -> Vec<Row> {
    let xml = std::fs::read_to_string(path).unwrap();
    let attribute = |text: &str, name: &str| -> String {
        let start = text.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        let end = start + text[start..].find('"').unwrap();
        unescape(&text[start..end])
    };
    xml.split("<testcase ")
        .skip(1)
        .map(|case| {
            let head = &case[..case.find('>').unwrap()];
            let verdict = ["failure", "error"]
                .iter()
                .find_map(|kind| {
                    let at = case.find(&format!("<{kind} "))?;
                    Some(format!("{kind}: {}", attribute(&case[at..], "message")))
                })
                .unwrap_or_else(|| "pass".to_string());
            (attribute(head, "name"), verdict)
        })
        .collect()
}

fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#10;", "\n")
        .replace("&amp;", "&")
}

/// A spec of its own in `dir` that includes preset `name`.
fn preset_spec(dir: &Path, name: &str) -> PathBuf {
    let spec = dir.join("spec.toml");
    let preset = project_root().join("rootfs-spec/presets").join(format!("{name}.toml"));
    std::fs::write(&spec, format!("name = \"cst-{name}\"\ninclude = [\"{}\"]\n", preset.display()))
        .unwrap();
    spec
}

/// What each test of failing.yaml reports against failing.toml's tree.
const EXPECTED: &[(&str, &str)] = &[
    (
        "expectedOutput",
        "failure: expected output matching `^hello`, saw \"declare -x FROM_GLOBAL=\\\"hi there\\\"\\n/home/app\\n\"",
    ),
    (
        "excludedOutput",
        "failure: excluded output `/home/\\w+` matched \"/home/app\" in \"declare -x FROM_GLOBAL=\\\"hi there\\\"\\n/home/app\\n\"",
    ),
    ("expectedError", "failure: expected error matching `^error`, saw \"warning\\n\""),
    ("excludedError", "failure: excluded error `warn` matched \"warn\" in \"warning\\n\""),
    ("exitCode", "failure: exit 4, expected exit 3"),
    (
        "envVars",
        "failure: expected output matching `^overridden\\n$`, saw \"hi\\n\"; excluded output `hi` matched \"hi\" in \"hi\\n\"",
    ),
    ("setup", "error: setup `bash -c 'exit 7'` exited 7"),
    ("teardown", "failure: teardown `cat /no/such/file` exited 1"),
    (
        "missing command",
        "error: cannot run inside the rootfs: No such file or directory (os error 2) (while executing the command)",
    ),
    (
        "expectedContents",
        "failure: expected content matching `(?m)^nobody:`, saw \"root:x:0:0:root:/root:/bin/bash\\napp:x:1000:1000:app:/home/app:/bin/bash\\n\"",
    ),
    (
        "excludedContents",
        "failure: excluded content `(?m)^app:x:\\d+` matched \"app:x:1000\" in \"root:x:0:0:root:/root:/bin/bash\\napp:x:1000:1000:app:/home/app:/bin/bash\\n\"",
    ),
    ("unreadable", "failure: `/etc/shadow` does not exist"),
    ("shouldExist", "failure: `/usr/bin/python3` should exist: `/usr/bin/python3` does not exist"),
    ("shouldExist false", "failure: `/etc/passwd` should not exist, but it does"),
    ("permissions", "failure: `/home/app` has permissions drwxr-x---, expected drwxr-xr-x"),
    (
        "uid and gid",
        "failure: `/home/app` is owned by uid 1000, expected 0; `/home/app` has gid 1000, expected 0",
    ),
    ("isExecutableBy", "failure: `/etc/passwd` is not executable by owner: -rw-r--r--"),
    ("License Test", "failure: `/etc/notice` mentions AGPL; `/etc/no-such-license` does not exist"),
    (
        "Metadata Test",
        "failure: environment variable GREETING is \"hi\", expected \"hello\"; \
         environment variable LANG is \"C.UTF-8\", expected matching \"^en_\"; \
         environment variable LANG is set, expected unset; \
         label team is \"rootfs\", expected \"other\"; \
         cmd is [\"bash\", \"-l\"], expected [\"bash\"]; \
         entrypoint is [], expected [\"/bin/sh\", \"-c\"]; \
         workdir is \"/home/app\", expected \"/\"; user is \"1000:1000\", expected \"app\"; \
         port 443/tcp is not exposed (the image has [\"8080/tcp\"]); \
         port 8080/tcp is exposed (the image has [\"8080/tcp\"]); \
         volume /cache is not a volume (the image has [\"/data\"]); \
         volume /data is a volume (the image has [\"/data\"])",
    ),
];

#[test]
fn each_assertion_says_what_it_expected_and_saw_on_the_tree_and_on_the_image() {
    if !can_enter() {
        return;
    }
    let dir = work_dir("structure-failing");
    for name in ["failing.toml", "failing.yaml"] {
        std::fs::copy(project_root().join("tests/data/structure").join(name), dir.join(name))
            .unwrap();
    }
    let spec = dir.join("failing.toml");
    let out = dir.join("out/tree");
    let tree_xml = dir.join("tree.xml");
    let (code, text) = rootfs_cli("smoke", &spec, &out, &["--junit", tree_xml.to_str().unwrap()]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("2 passed, 19 failed"), "{text}");
    let expected: Vec<Row> =
        EXPECTED.iter().map(|(name, verdict)| (name.to_string(), verdict.to_string())).collect();
    let tree_rows = junit_rows(&tree_xml);
    // The commands' own probes come first.
    assert_eq!(tree_rows[..2], [("bash".into(), "pass".into()), ("cat".into(), "pass".into())]);
    assert_eq!(tree_rows[2..], expected[..], "{text}");
    let image_xml = dir.join("image.xml");
    let image = dir.join("out/image.oci");
    let tests = dir.join("failing.yaml");
    let extra = [
        "--format",
        "oci",
        "--output",
        image.to_str().unwrap(),
        "--structure-test",
        tests.to_str().unwrap(),
        "--junit",
        image_xml.to_str().unwrap(),
    ];
    let (code, text) = rootfs_cli("export", &spec, &out, &extra);
    assert_eq!(code, 1, "{text}");
    assert_eq!(junit_rows(&image_xml), expected, "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// distroless's tests that cannot apply to our preset, with the reason and
/// a text of the failure that shows that reason.
const PYTHON3_NOT_APPLICABLE: &[(&str, &str, &str)] = &[
    (
        "version",
        "expects Debian 13's Python 3.13.5; the preset is the host's Debian 12 Python 3.11",
        "`Python 3.13.5`, saw \"Python 3.11.",
    ),
    (
        "symlink",
        "the same version, through distroless's own /usr/bin/python link, which the preset does not make",
        "No such file or directory",
    ),
    (
        "import_everything",
        "its skip list is Python 3.13's: under 3.11 `lib2to3.__main__` (gone in 3.13) exits 2 on import",
        "exit 2, expected exit 0",
    ),
];

#[test]
fn distroless_python3_tests_pass_on_the_python3_preset_where_they_apply() {
    let files = ["python3-python3.yaml", "python3-debian13.yaml"];
    distroless_on_preset("python3", &files, PYTHON3_NOT_APPLICABLE);
}

const JAVA_NOT_APPLICABLE: &[(&str, &str, &str)] = &[
    (
        "java",
        "distroless ships Temurin under /usr/lib/jvm/temurin-17-jre-amd64; the preset is Debian's OpenJDK",
        "No such file or directory",
    ),
    (
        "java-symlink",
        "expects Temurin 17.0.20.1; Debian's OpenJDK 17 has its own version",
        "expected error matching `openjdk version \"17.0.20.1`, saw \"openjdk version \\\"17.",
    ),
    (
        "certs",
        "Temurin's /etc/ssl/certs/adoptium/cacerts",
        "`/etc/ssl/certs/adoptium/cacerts` should exist",
    ),
    (
        "certs",
        "Temurin's own lib/security/cacerts link",
        "`/usr/lib/jvm/temurin-17-jre-amd64/lib/security/cacerts` should exist",
    ),
    (
        "no-shell",
        "the java preset ships /bin/sh for its own javac check",
        "`/bin/sh` should not exist",
    ),
    (
        "jexec-executable",
        "a Temurin path",
        "`/usr/lib/jvm/temurin-17-jre-amd64/lib/jexec` should exist",
    ),
    (
        "jspawnhelper-executable",
        "a Temurin path",
        "`/usr/lib/jvm/temurin-17-jre-amd64/lib/jspawnhelper` should exist",
    ),
    (
        "Metadata Test",
        "JAVA_VERSION is set by Temurin's image, not by Debian's JDK",
        "environment variable JAVA_VERSION is not set",
    ),
    (
        "no-shell",
        "java_base.yaml, as above: the preset ships /bin/sh",
        "`/bin/sh` should not exist",
    ),
    (
        "no-jvm",
        "java_base.yaml checks distroless's image without a JVM",
        "`/usr/lib/jvm` should not exist",
    ),
];

#[test]
fn distroless_java_tests_pass_on_the_java_preset_where_they_apply() {
    let files = ["java-java17_debian13.yaml", "java-java_base.yaml"];
    distroless_on_preset("java", &files, JAVA_NOT_APPLICABLE);
}

/// Runs distroless's `files` unchanged against preset `name`: the tests
/// in `not_applicable` fail for their stated reason, in that order, and
/// every other test passes.
fn distroless_on_preset(name: &str, files: &[&str], not_applicable: &[(&str, &str, &str)]) {
    if !can_enter() {
        return;
    }
    let dir = work_dir(&format!("structure-distroless-{name}"));
    let spec = preset_spec(&dir, name);
    let xml = dir.join("report.xml");
    let mut extra = vec!["--junit".to_string(), xml.display().to_string()];
    for file in files {
        extra.push("--structure-test".to_string());
        extra.push(project_root().join(DISTROLESS).join(file).display().to_string());
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let (_, text) = rootfs_cli("smoke", &spec, &dir.join("out/tree"), &extra);
    let rows = junit_rows(&xml);
    let mut expected = not_applicable.iter().peekable();
    let mut passed = 0;
    for (test, verdict) in &rows {
        match expected.peek() {
            Some((failing, _, shows)) if failing == test && verdict != "pass" => {
                assert!(verdict.contains(shows), "{test}: {verdict}\n{text}");
                expected.next();
            }
            _ => {
                assert_eq!(verdict, "pass", "{test} should pass\n{text}");
                passed += 1;
            }
        }
    }
    assert_eq!(
        expected.next(),
        None,
        "a test listed as not applicable passed or was not run\n{text}"
    );
    assert!(passed > not_applicable.len().min(3), "{passed} passed\n{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The text a JUnit test case's `system-out` holds.
fn junit_outputs(path: &Path) -> Vec<(String, String)> {
    let xml = std::fs::read_to_string(path).unwrap();
    xml.split("<testcase ")
        .skip(1)
        .map(|case| {
            let start = case.find("name=\"").unwrap() + 6;
            let name = unescape(&case[start..start + case[start..].find('"').unwrap()]);
            let output = match (case.find("<system-out>"), case.find("</system-out>")) {
                (Some(open), Some(close)) => unescape(&case[open + 12..close]),
                _ => String::new(),
            };
            (name, output)
        })
        .collect()
}

/// The command tests of failing.yaml, run by runc in a bundle export of the
/// same tree, print exactly what they printed in the sandbox, and exit as
/// their verdict there says: the tests see what a container runtime shows.
#[test]
fn command_tests_see_under_runc_what_they_see_in_the_sandbox() {
    if crate::export::needs_root() || !can_enter() {
        return;
    }
    let runc = crate::export::tool("runc");
    let dir = work_dir("structure-runc");
    for name in ["failing.toml", "failing.yaml"] {
        std::fs::copy(project_root().join("tests/data/structure").join(name), dir.join(name))
            .unwrap();
    }
    let (spec, out, xml) = (dir.join("failing.toml"), dir.join("out/tree"), dir.join("tree.xml"));
    let (_, text) = rootfs_cli("smoke", &spec, &out, &["--junit", xml.to_str().unwrap()]);
    let outputs = junit_outputs(&xml);
    let verdicts = junit_rows(&xml);
    let bundle = dir.join("out/tree.bundle");
    let extra = ["--format", "bundle", "--output", bundle.to_str().unwrap()];
    let (code, export) = rootfs_cli("export", &spec, &out, &extra);
    assert_eq!(code, 0, "{export}");
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    let image_env: std::collections::BTreeMap<String, String> = config["process"]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().split_once('=').unwrap())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let tests = rootfs::run::smoke::structure::load(&dir.join("failing.yaml")).unwrap();
    let mut compared = 0;
    for (i, test) in tests.commands.iter().enumerate() {
        if !test.setup.is_empty() || !test.teardown.is_empty() || test.name == "missing command" {
            continue;
        }
        let mut env = image_env.clone();
        for var in &tests.global_env {
            env.insert(
                var.key.clone(),
                rootfs::run::smoke::structure::expand(&var.value, &image_env),
            );
        }
        env.extend(test.env_vars.iter().map(|v| (v.key.clone(), v.value.clone())));
        let argv: Vec<String> = test
            .argv()
            .iter()
            .map(|a| rootfs::run::smoke::structure::expand(a, &image_env))
            .collect();
        let (status, stdout, stderr) = runc_run(runc, &dir, &bundle, &config, i, &argv, &env);
        let mut shown = stdout;
        if !stderr.is_empty() {
            if !shown.is_empty() && !shown.ends_with('\n') {
                shown.push('\n');
            }
            shown.push_str(&format!("--- standard error ---\n{stderr}"));
        }
        let row = outputs.iter().find(|(name, _)| *name == test.name).unwrap();
        assert_eq!(shown, row.1, "{}: runc against the sandbox\n{text}", test.name);
        let verdict = &verdicts.iter().find(|(name, _)| *name == test.name).unwrap().1;
        assert_eq!(status == test.exit_code, !verdict.contains("expected exit"), "{verdict}");
        compared += 1;
    }
    assert_eq!(compared, 6);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `argv` with `env` in a copy of the bundle's `config.json` (the
/// bundle's root read-only, with the capability docker gives to reach
/// other users' folders), by runc: exit status, standard output, error.
fn runc_run(
    runc: &str,
    dir: &Path,
    bundle: &Path,
    config: &serde_json::Value,
    n: usize,
    argv: &[String],
    env: &std::collections::BTreeMap<String, String>,
) -> (i32, String, String) {
    let run_dir = dir.join(format!("runc-{n}"));
    std::fs::create_dir_all(&run_dir).unwrap();
    let mut config = config.clone();
    config["root"]["path"] = bundle.join("rootfs").display().to_string().into();
    config["root"]["readonly"] = true.into();
    config["process"]["args"] = serde_json::json!(argv);
    config["process"]["env"] =
        serde_json::json!(env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>());
    for set in ["bounding", "effective", "permitted"] {
        config["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push("CAP_DAC_OVERRIDE".into());
    }
    std::fs::write(run_dir.join("config.json"), serde_json::to_vec(&config).unwrap()).unwrap();
    let id = format!("rootfs-structure-{}-{n}", std::process::id());
    let state = dir.join("runc-state");
    let out = duct::cmd(
        runc,
        ["--root", state.to_str().unwrap(), "run", "--bundle", run_dir.to_str().unwrap(), &id],
    )
    .stdout_capture()
    .stderr_capture()
    .unchecked()
    .run()
    .unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}
