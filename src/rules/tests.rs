//! Rule pack tests: parsing, errors, the built-in library, selection.

use super::pack::*;
use super::*;

#[test]
fn rule_regexes_tolerate_json_escapes_around_secrets() {
    assert_eq!(
        escape_tolerant(r"\bAKIA[A-Z]{4}\b"),
        format!("{ESCAPE_BOUNDARY}AKIA[A-Z]{{4}}{ESCAPE_BOUNDARY}")
    );
    // Not inside a class, not an escaped backslash followed by `b`, not `[]\b]`.
    assert_eq!(escape_tolerant(r"[\b]x\\b[]\b]"), r"[\b]x\\b[]\b]");
    assert_eq!(
        escape_tolerant(r"(?:^|[^a-z])k"),
        format!("{LEAD_ESCAPES}[^a-z])k")
    );
    assert_eq!(escape_tolerant(r"[:/]x://y"), r"[:/]x:(?:\\?/){2}y");
    let re = compile_regex(r"(?:^|[^0-9A-Za-z_])(?P<s>AKIA[A-Z2-7]{16})\b").unwrap();
    for hay in [
        r#"{"m":"k \u0022AKIA2QWERTYUZXCVBNMQ\u0022 x"}"#,
        r#"{"m":"keys:\nAKIA2QWERTYUZXCVBNMQ\nend"}"#,
        "AKIA2QWERTYUZXCVBNMQ",
    ] {
        assert!(re.is_match(hay.as_bytes()), "{}", &hay[..8]);
    }
    assert!(!re.is_match(b"xAKIA2QWERTYUZXCVBNMQ"));
    let url = compile_regex(r"\bhttps://u:(?P<p>[a-z]+)@").unwrap();
    assert!(url.is_match(br#""https:\/\/u:pw@h""#));
}

const PACK: &str = r#"
[pack]
id = "test"
description = "test pack"

[[rules]]
id = "demo-token"
description = "demo"
regex = '''\bdemo_(?P<secret>[a-z0-9]{8})\b'''
keywords = ["demo_"]
examples = ["x demo_abcd1234 y", "token=demo_zzzz9999"]
negative_examples = ["demo_short"]
"#;

#[test]
fn builtin_packs_load_and_have_rules() {
    let set = RuleSet::builtin().unwrap();
    assert!(set.rules.len() >= 40, "only {} rules", set.rules.len());
    let mut ids: Vec<_> = set.rules.iter().map(|r| r.id.as_str()).collect();
    ids.sort();
    let n = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), n, "duplicate rule ids");
}

#[test]
fn readme_documents_every_builtin_rule_id() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let set = RuleSet::builtin().unwrap();
    let missing: Vec<_> = set
        .rules
        .iter()
        .filter(|r| !readme.contains(&format!("`{}`", r.id)))
        .map(|r| r.id.as_str())
        .collect();
    assert!(missing.is_empty(), "README lacks rule ids: {missing:?}");
}

#[test]
fn pack_parses_and_secret_group_resolves() {
    let (pack, _, rules) = parse_pack(PACK, "t.toml").unwrap();
    assert_eq!(pack, "test");
    assert_eq!(rules[0].secret_group(), 1);
}

fn err_of(text: &str) -> String {
    format!("{:#}", parse_pack(text, "bad.toml").unwrap_err())
}

#[test]
fn bad_rules_are_rejected_with_file_and_id() {
    let e = err_of(&PACK.replace(r"[a-z0-9]{8}", r"[a-z0-9{8}"));
    assert!(
        e.contains("bad.toml")
            && e.contains("demo-token")
            && e.contains("invalid regex: unclosed character class (at character 19"),
        "{e}"
    );
    // No group for the secret: rejected, unless secret_group says so.
    let e = err_of(&PACK.replace("(?P<secret>", "("));
    assert!(
        e.contains("demo-token") && e.contains("no (?P<secret>"),
        "{e}"
    );
    let (_, _, r) = parse_pack(
        &PACK.replace("(?P<secret>", "(").replace(
            "keywords = [\"demo_\"]",
            "secret_group = 0\nkeywords = [\"demo_\"]",
        ),
        "ok.toml",
    )
    .unwrap();
    assert_eq!(r[0].secret_group(), 0);
    let e = err_of(&PACK.replace(
        "examples = [\"x",
        "validators = [\"nope\"]\nexamples = [\"x",
    ));
    assert!(e.contains("unknown validator 'nope'"), "{e}");
    let e = err_of(&PACK.replace("keywords = [\"demo_\"]", "keywords = [\"de\"]"));
    assert!(e.contains("shorter than"), "{e}");
    let e = err_of(&PACK.replace(
        "keywords = [\"demo_\"]",
        "secret_group = \"nope\"\nkeywords = [\"demo_\"]",
    ));
    assert!(e.contains("secret_group 'nope'"), "{e}");
    let e = err_of(
        &PACK
            .replace("(?P<secret>", "(?<secret>")
            .replace("{8}", "{8}(?=x)"),
    );
    assert!(e.contains("invalid regex"), "{e}");
    let e = err_of(
        "[pack]\nid='x'\n[[rules]]\nid='Bad Id'\ndescription=''\nregex='a'\nkeywords=['abc']\n",
    );
    assert!(e.contains("kebab-case"), "{e}");
}

#[test]
fn selection_disables_packs_and_rules() {
    let mut set = RuleSet::builtin().unwrap();
    let pack = set.rules[0].pack.clone();
    set.apply(&Selection {
        disable: vec![pack.clone()],
        enable: vec![],
    })
    .unwrap();
    assert!(set.enabled().iter().all(|r| r.pack != pack));
    let one = set.rules[0].id.clone();
    set.apply(&Selection {
        disable: vec![],
        enable: vec![one.clone()],
    })
    .unwrap();
    assert!(set.enabled().iter().any(|r| r.id == one));
    assert!(set
        .apply(&Selection {
            disable: vec!["no-such".into()],
            enable: vec![]
        })
        .is_err());
}

#[test]
fn builtin_regexes_compile_on_first_use_once_for_all_clones() {
    let set = RuleSet::builtin().unwrap();
    // Loading compiles nothing: start-up does not pay for rules the input never wakes.
    assert!(set.rules.iter().all(|r| !r.regex.is_compiled()));
    let copy = set.enabled();
    let r = &set.rules[0];
    r.regex.get();
    assert!(r.regex.is_compiled());
    let twin = copy.iter().find(|c| c.id == r.id).unwrap();
    assert!(twin.regex.is_compiled(), "a clone compiles its own copy");
    // And every built-in one compiles, with its secret group (the lazy path cannot fail
    // at run time for anything the binary ships).
    for r in &set.rules {
        let c = r.regex.force().unwrap_or_else(|e| panic!("{}: {e}", r.id));
        assert!(
            c.secret_group
                < c.regex
                    .group_info()
                    .group_len(regex_automata::PatternID::ZERO)
        );
        for side in [&r.reject_before, &r.reject_after].into_iter().flatten() {
            side.force().unwrap_or_else(|e| panic!("{}: {e}", r.id));
        }
    }
}

#[test]
fn custom_pack_regexes_are_compiled_and_checked_at_load() {
    let (_, _, rules) = parse_pack(PACK, "custom.toml").unwrap();
    assert!(rules[0].regex.is_compiled());
    let bad = PACK.replace("reject", "x").replace(
        "keywords = [\"demo_\"]",
        "keywords = [\"demo_\"]\nreject_after = '''(unclosed'''",
    );
    let e = parse_pack(&bad, "custom.toml").unwrap_err().to_string();
    assert!(
        e.contains("invalid reject_after regex") && e.contains("demo-token"),
        "{e}"
    );
}
