//! Engine tests: findings, replacement, batches, windows, multiline keys.
use super::*;
use crate::fingerprint::Key;
use crate::rules::parse_pack;

const PACK: &str = r#"
[pack]
id = "t"
[[rules]]
id = "pw"
description = "password assignment"
regex = '''(?i)\bpassword=(?P<secret>[^\s&"]{3,})'''
keywords = ["password"]
priority = 10
[[rules]]
id = "ghp"
description = "github"
regex = '''\b(?P<secret>ghp_[A-Za-z0-9]{8})\b'''
keywords = ["ghp_"]
[[rules]]
id = "card"
description = "card"
regex = '''\b(?P<secret>\d{4}(?:[ -]?\d{4}){3})\b'''
prefilter = "digit-run"
validators = ["luhn"]
"#;

fn engine() -> Engine {
    let (_, _, rules) = parse_pack(PACK, "t").unwrap();
    let key = Key::parse("k1", "logveil-test-key-thirty-two-byte", "test").unwrap();
    Engine::new(
        Matcher::new(rules),
        Keyring::single(key),
        Template::default(),
    )
}

/// Failure messages show secrets cut to their first 4 characters.
fn masked(text: &str, secrets: &[&str]) -> String {
    secrets
        .iter()
        .fold(text.to_string(), |t, s| t.replace(s, &s[..4]))
}

fn fp(e: &Engine, s: &str) -> String {
    e.keyring().active().fingerprint(s.as_bytes()).to_string()
}

#[test]
fn replaces_only_the_secret_part() {
    let e = engine();
    let out = e.redact_to_vec(b"login ok password=hunter2 user=bob\n");
    let want = format!(
        "login ok password=[REDACTED:pw:k1:{}] user=bob\n",
        fp(&e, "hunter2")
    );
    let out = String::from_utf8(out).unwrap();
    assert!(out == want, "{}", masked(&out, &["hunter2"]));
}

#[test]
fn clean_batches_are_passed_through_as_one_slice() {
    let e = engine();
    let input = Bytes::from_static(b"nothing here\nnor here\r\nlast without newline");
    let r = e.redact(&input, &mut e.scratch(), true);
    assert_eq!(r.chunks.len(), 1);
    assert_eq!(
        r.chunks[0].as_ptr(),
        input.as_ptr(),
        "clean batch was copied"
    );
    assert_eq!(r.records, 3);
}

#[test]
fn overlapping_findings_merge_and_specific_rule_wins() {
    let e = engine();
    let out = e.redact_to_vec(b"password=ghp_abcdEFGH\n");
    let s = String::from_utf8(out).unwrap();
    let shown = masked(&s, &["ghp_abcdEFGH"]);
    assert!(s.starts_with("password=[REDACTED:ghp:k1:"), "{shown}");
    assert_eq!(s.matches("REDACTED").count(), 1, "{shown}");
}

#[test]
fn several_findings_per_record_and_many_records() {
    let e = engine();
    let input = b"a password=one1 b password=two2\nclean\nc ghp_12345678 d\n";
    let out = String::from_utf8(e.redact_to_vec(input)).unwrap();
    assert_eq!(
        out.matches("[REDACTED:").count(),
        3,
        "{}",
        masked(&out, &["one1", "two2", "12345678"])
    );
    assert!(out.contains("\nclean\n"));
    assert!(!out.contains("one1") && !out.contains("two2") && !out.contains("12345678"));
}

#[test]
fn keyword_case_insensitive_and_invalid_utf8_passes_through() {
    let e = engine();
    let mut input = b"\xff\xfe PASSWORD=s3cret \x00 tail\r\n".to_vec();
    input.extend_from_slice(b"\xc3\x28 bin\n");
    let out = e.redact_to_vec(&input);
    let want_mid = format!(
        "PASSWORD=[REDACTED:pw:k1:{}] \x00 tail\r\n",
        fp(&e, "s3cret")
    );
    assert!(out.starts_with(b"\xff\xfe "));
    assert!(out.ends_with(b"\xc3\x28 bin\n"));
    assert!(memchr::memmem::find(&out, want_mid.as_bytes()).is_some());
}

#[test]
fn cards_need_luhn_and_digit_runs() {
    let e = engine();
    let out = String::from_utf8(
        e.redact_to_vec(b"pay 4111 1111 1111 1111 ok\norder 4111111111111112 ok\n"),
    )
    .unwrap();
    let shown = masked(&out, &["4111 1111 1111 1111"]);
    assert!(out.starts_with("pay [REDACTED:card:k1:"), "{shown}");
    assert!(out.contains("order 4111111111111112 ok"), "{shown}");
}

#[test]
fn placeholders_are_not_findings() {
    let e = engine();
    for line in [
        "password=${DB_PASS}\n",
        "password=****\n",
        "password=null\n",
    ] {
        assert_eq!(e.redact_to_vec(line.as_bytes()), line.as_bytes());
    }
    // Redacting redacted output changes nothing.
    let once = e.redact_to_vec(b"password=hunter2\n");
    assert_eq!(e.redact_to_vec(&once), once);
}

#[test]
fn followed_by_and_reject_before_narrow_candidates() {
    let pack = r#"
[pack]
id = "t"
[[rules]]
id = "tok"
description = "token assignment"
regex = '''(?i)token[ \t]*[:=][ \t]*(?P<secret>[a-z0-9]{6,})'''
keywords = ["token"]
followed_by = ["=", ":"]
followed_within = 4
[[rules]]
id = "card"
description = "card"
regex = '''\b(?P<secret>\d{16})\b'''
prefilter = "digit-run"
validators = ["luhn"]
reject_before = '''order_id='''
"#;
    let (_, _, rules) = parse_pack(pack, "t").unwrap();
    let m = Matcher::new(rules);
    assert_eq!(m.find(b"x token=abc123def y").len(), 1);
    assert_eq!(m.find(b"x token  :  abc123def y").len(), 1);
    // The keyword is not followed by an assignment: the regex never runs.
    assert!(m.find(b"token expired, refreshing session").is_empty());
    // A later hit in the same record still counts.
    assert_eq!(m.find(b"token expired; token=zz9988xx").len(), 1);
    assert_eq!(m.find(b"card 4111111111111111 ok").len(), 1);
    assert!(m.find(b"order_id=4111111111111111 ok").is_empty());
}

#[test]
fn findings_never_split_an_escape() {
    let hay: &[u8] = br#"{"a":"x\"secret\u0041b\\c\n"}"#;
    let at = |needle: &[u8]| memchr::memmem::find(hay, needle).unwrap();
    let span = |start: usize, end: usize| {
        let mut f = Finding {
            start,
            end,
            rule: 0,
        };
        align_to_escapes(hay, &mut f);
        &hay[f.start..f.end]
    };
    // The span starts on an escaped quote: the backslash goes with it.
    assert_eq!(
        span(at(br#"\"secret"#) + 1, at(b"secret") + 6),
        br#"\"secret"#
    );
    // The span ends on the backslash of `\u0041`: it stays out.
    assert_eq!(span(at(b"secret"), at(br#"\u0041"#) + 1), b"secret");
    // The span starts inside the hex digits of `\u0041`: the escape is taken in whole.
    assert_eq!(span(at(b"0041") + 1, at(b"0041") + 4), br#"\u0041"#);
    // `\\` before `c` is an escaped backslash, not an escape of `c`.
    assert_eq!(span(at(br#"c\n"#), at(br#"c\n"#) + 1), b"c");
}

/// Redacts one record (its newline added when missing) and returns the output as text.
fn redact_line(e: &Engine, line: &str) -> String {
    let rec = if line.ends_with('\n') {
        line.to_string()
    } else {
        format!("{line}\n")
    };
    String::from_utf8_lossy(&e.redact_to_vec(rec.as_bytes())).into_owned()
}

/// The record comes out byte for byte (the records here hold no secret to mask).
fn assert_unchanged(e: &Engine, line: &str) {
    let out = redact_line(e, line);
    let expected = if line.ends_with('\n') {
        line.to_string()
    } else {
        format!("{line}\n")
    };
    assert_eq!(out, expected);
}

/// `secret` is gone from the output; a failure shows the output with it masked. Returns
/// the output.
fn assert_hidden(e: &Engine, line: &str, secret: &str) -> String {
    let out = redact_line(e, line);
    assert!(!out.contains(secret), "{}", masked(&out, &[secret]));
    out
}

fn builtin_engine() -> Engine {
    let rules = crate::rules::RuleSet::builtin().unwrap().enabled();
    let key = Key::parse("k1", "logveil-test-key-thirty-two-byte", "test").unwrap();
    Engine::new(
        Matcher::new(rules),
        Keyring::single(key),
        Template::default(),
    )
}

/// Every example of the precision issue (#10): real-log text that is not a secret stays
/// byte for byte, and where an operator precedes a real value, the value (never the
/// operator) is what gets replaced.
#[test]
fn real_log_references_placeholders_and_identifiers_stay() {
    let e = builtin_engine();
    for line in [
        "Nov  2 10:01:22 web-03 sudo:    alice : TTY=pts/2 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id",
        "export PWD=/app",
        "declare -x PWD=\"/app\"",
        "declare -x OLDPWD=\"/srv/www\"",
        "OLDPWD=/tmp",
        "secret_arn=arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf",
        "password=[MASKED] token=[FILTERED] secret=*** api_key=**** password=<redacted>",
        "password=(hidden) password=(null) password=? password=%s password=%-8v password=${VAR}",
        "password=$VAR password=$db_pass password={{ .Values.x }} password=<password> password=xxxxxxxx",
        "password=\"{{ .Values.db.password }}\"",
        "password = request.form[\"pw\"]",
        "    password = request.form[\"password\"]",
        "password = new PasswordEncoder()",
        "token=env.GITHUB_TOKEN",
        "password = getPassword()",
        "char *password = (char*)malloc(64);",
        "token = os.environ[\"GITHUB_TOKEN\"]",
        "password = settings.DB_PASSWORD",
        "api_key = config.get(\"api_key\")",
        "db_password = var.db_password",
        "password: ~",
        "\"password\": null",
        "Authorization: Bearer",
        "\"Authorization\": \"Bearer \"",
        "WindowManager: token=AppWindowToken{4a3b2c1 token=Token{9f8e7d6 ActivityRecord{1c2d3e4 u0 com.example/.MainActivity t12}}}",
        "  Token: {",
        "creds=com.acme.auth.Credentials@1b6d3586",
        "User{id=42, name='alice', password=null}",
        "Access denied for user 'app'@'10.0.0.5' (using password: YES)",
        "INFO BlockStateChange: BLOCK* addStoredBlock: blockMap updated: 10.0.0.5:50010 is added to blk_1073741825_1001 size 134217728",
        "INFO datanode.DataNode: Receiving BP-1234567890-10.0.0.1-1600000000000:blk_-1608999687919862906_1001 src: /10.0.0.2:50010",
        // Found on the realistic corpus (tests/realistic): one line per class.
        "Nov  2 10:01:22 web-03 passwd[5696]: pam_unix(passwd:chauthtok): password changed for bob",
        "Nov  2 10:01:22 web-03 gdm-password][8920]: pam_unix(gdm-password:session): session opened for user alice",
        "{\"masterUsername\":\"admin\",\"masterUserPassword\":\"HIDDEN_DUE_TO_SECURITY_REASONS\"}",
        "msg=\"fetching secret\" secret=\"arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf:password::\"",
        "{\"secret\":\"projects/acme-prod-42/secrets/db-password/versions/latest\"}",
        "{\"subjectFromWebIdentityToken\":\"repo:acme/infra:ref:refs/heads/main\"}",
        "{\"clientRequestToken\":\"3f2b8c1e-9a4d-4e7f-b2c1-5d6e7f8a9b0c\",\"clientToken\":\"terraform-20261102100122118400000001\",\"nextToken\":\"AAEAAWx0c2Vzc2lvbjEyMw\"}",
        "E1102 reflector.go:535] failed to list *v1.Secret: secrets is forbidden: User cannot list",
        "DEBUG:botocore.credentials:Looking for credentials via: env",
        "err=\"open /etc/prometheus/secrets/scrape-token/token: open /etc/prometheus/secrets/scrape-token/token: no such file\"",
        "POST https://sso.acme.example/realms/acme/protocol/openid-connect/token: 401 Unauthorized",
        "    conn = psycopg2.connect(host=settings.DB_HOST, password=settings.DB_PASSWORD)",
        "[2026-11-02 10:01:22,118: INFO] Connected to amqp://celery:**@rabbitmq:5672//",
        "D OkHttp  : Authorization: \u{2588}\u{2588}",
        "V AccountManagerService: getAuthToken: Account {name=alice@acme.example, type=com.google}",
        "INFO DelegationTokenRenewer: Renewed delegation-token= [Kind: HDFS_DELEGATION_TOKEN, Service: ha-hdfs:prod, Ident: (token for etl)]",
        "{\"instance_id\":\"4035123456789012349\",\"targetId\":\"4035123456789012349\",\"id\":\"4035123456789012349\"}",
        "GET /compute/v1/projects/acme/zones/eu/operations/4035123456789012349 200",
        "{\"client_token\":\"hmac-sha256:8f14e45fceea167a5a36dedd4bea2543bd7c7f1e9a4b1f2c3d4e5f60718293a4\"}",
        "{\"createUser\":\"reporting\",\"pwd\":\"xxx\"}",
        "{\"name\": \"deploy\", \"password\": \"NOT_LOGGING_PASSWORD\"}",
        "    \"db_password\": \"VARIABLE IS NOT DEFINED!\"",
        "      + password = (sensitive value)",
        "      + master_user_secret = (known after apply)",
        "kubernetes_secret.db_credentials: Creating...",
        "export POSTGRES_PASSWORD=$(kubectl get secret db -o jsonpath=\"{.data.password}\" | base64 -d)",
        "password:  16 bytes",
        "kubectl create secret generic db --from-file=password=./db-password.txt",
        "[INFO] provider: Retrieved credentials: tf_aws.credentials_source=SharedConfigCredentials: /home/runner/.aws/credentials",
        "helm upgrade app ./chart --set db.existingSecret=db-credentials",
        "{\"extra\":{\"authentication.kubernetes.io/credential-id\":[\"BootstrapToken=07401b\"]}}",
        "Uploading artifacts as \"archive\" to coordinator... 201 Created  id=4711 responseStatus=201 Created token=WsNRx8Qa",
        "verifying certificate SN=4035123456789012349, SKID=, AKID=AB:CD",
        "{\"ElevatedToken\":\"%%1842\",\"VirtualAccount\":\"%%1843\"}",
        "$securePassword = Read-Host -AsSecureString -Prompt 'Enter password'",
        "$token = (Get-AzAccessToken -ResourceUrl 'https://vault.azure.net').Token",
        "WARNING! Using --password via the CLI is insecure. Use --password-stdin.",
        "  Parameters: {\"query\"=>\"mutation Login($email: String!, $password: String!) { login }\"}",
        "To edit, run `bin/rails credentials:edit`.",
        "-  password: '*** (before)'",
        // From the held-out formats (written after the checks above, measured before
        // these lines were fixed).
        "2026-11-02T10:01:22Z [ERROR] nomad.rpc: failed to resolve token: error=\"ACL token not found\" accessor_id=3f2b8c1e",
        "agent: Updated agent's ACL token: token=agent",
        "level=error msg=\"failed to get token: oauth2: \\\"bad_verification_code\\\"\"",
        "error=\"failed to load auth credentials: secret monitoring/dashboard-basic-auth not found\"",
        "{\"Authorization\":\"{\\\"action\\\":\\\"Microsoft.KeyVault/vaults/secrets/write\\\",\\\"scope\\\":\\\"/subscriptions/x\\\"}\"}",
        "      token: '[Security Artifact of type 'Microsoft.IdentityModel.JsonWebTokens.JsonWebToken' is hidden. For more details, see https://aka.ms/x.]'.",
        "{\"hierarchy\":\"22251234-5678-9012-a86d-781828b258a4\",\"templateHash\":\"4292371883483759178\"}",
        "1,2026/11/02 00:56:11,0,any,0,4057123456789012349,0x8000000000000000,US",
    ] {
        assert_unchanged(&e, line);
    }
    // After `:=`, `=>`, `==`, `!=`, `===` the literal is the value; the operator stays.
    for (line, op) in [
        ("password := \"hunter2x\"", ":="),
        ("password => \"hunter2x\"", "=>"),
        ("\"password\" => \"hunter2x\"", "=>"),
        ("if (password == \"hunter2x\") {", "=="),
        ("if password != \"hunter2x\":", "!="),
        ("password === 'hunter2x'", "==="),
        ("token := \"Zq8WmX2pL7vR4tNk\"", ":="),
    ] {
        let secret = if line.contains("hunter2x") {
            "hunter2x"
        } else {
            "Zq8WmX2pL7vR4tNk"
        };
        let out = assert_hidden(&e, line, secret);
        assert!(
            out.contains(&format!("{op} \"[REDACTED:"))
                || out.contains(&format!("{op} '[REDACTED:")),
            "operator {op} not kept: {}",
            masked(&out, &[secret])
        );
    }
    // The value-shape checks leave real values alone.
    for (line, secret) in [
        ("password: hunter user: bob", "hunter"),
        (
            "{\"url\":\"https:\\/\\/admin:S3cr3tPw@db.example.com\\/x\"}",
            "S3cr3tPw",
        ),
        ("see https://admin:S3cr3tPw@db.example.com/x", "S3cr3tPw"),
        ("{\"msg\":\"cfg:\\npassword=hunter2x\\nend\"}", "hunter2x"),
        ("{\"token\":\"Zq8WmX2pL7vR4tNk\"}", "Zq8WmX2pL7vR4tNk"),
        ("client_token=Zq8WmX2pL7vR4tNk", "Zq8WmX2pL7vR4tNk"),
        ("password=Ab/Cd/Ef9x", "Ab/Cd/Ef9x"),
        ("card=4111-1111-1111-1111", "4111-1111-1111-1111"),
    ] {
        assert_hidden(&e, line, secret);
    }
    // A marker damaged by a corrupted transport (invalid UTF-8 inside it) is still one:
    // nothing inside it is taken for a `token:` key (found by the generated-input
    // property: no nested markers).
    let damaged =
        b"{\"password\":\"[REDACTED:github-classic-token:\xff\xfek1:0123456789abcdef]\"}\n";
    assert_eq!(e.redact_to_vec(damaged), damaged.to_vec());
    let damaged = b"request [REDACTED:\xc3(github-classic-token:k1:0123456789abcdef]\n";
    assert_eq!(e.redact_to_vec(damaged), damaged.to_vec());
    let damaged = b"msg=\"[REDACTED:github-classic-token:k\t1:0123456789abcdef]\"\n";
    assert_eq!(e.redact_to_vec(damaged), damaged.to_vec());
    let damaged = b"msg=\"x [REDACTED:\x01github-classic-token:k1:0123456789abcdef] y\"\n";
    assert_eq!(e.redact_to_vec(damaged), damaged.to_vec());
    let damaged = b"[REDACTED:github-classic-token:k1:0\xff\xfe123456789abcde]\n";
    assert_eq!(e.redact_to_vec(damaged), damaged.to_vec());
    // Idempotent where a quoted string holds a marker and an assignment after the value.
    let once = redact_line(
        &e,
        "{\"client_secret\":\"request [REDACTED:github-classic-token:k1:0123456789abcdef] password=hunter2x\"}",
    );
    assert_eq!(
        redact_line(&e, &once),
        once,
        "{}",
        masked(&once, &["hunter2x"])
    );
    // `changeme` is a judgment call: a documented default password is still a password.
    let out = e.redact_to_vec(b"password=changeme\n");
    assert!(out.starts_with(b"password=[REDACTED:"));
}

#[test]
fn json_scalars_on_secret_names_stay_byte_for_byte() {
    let e = builtin_engine();
    for line in [
        "{\"password\": null}\n",
        "{\"secret\": true}\n",
        "{\"token\": 12345}\n",
        "{\"a\":{\"passwd\":null}}}\n",
        "{\"api_key\":false,\"client_secret\":-1.5e-7,\"pwd\":0}\n",
        "{\"log\":\"{\\\"password\\\":null}\\n\"}\n",
    ] {
        assert_unchanged(&e, line);
    }
    // Things that only start like JSON scalars, or numbers outside JSON, are still found.
    for (line, secret) in [
        (
            "\"pan\": 4111 1111 1111 1111 reason=x\n",
            "4111 1111 1111 1111",
        ),
        ("cardNumber=[4111111111111111]\n", "4111111111111111"),
        ("{\"password\": {noop}hunter2}\n", "{noop}hunter2"),
    ] {
        assert_hidden(&e, line, secret);
    }
    // A string value on the same names is still a secret.
    let out = e.redact_to_vec(b"{\"password\": \"hunter2\"}\n");
    assert!(
        out.starts_with(b"{\"password\": \"[REDACTED:"),
        "{}",
        masked(&String::from_utf8_lossy(&out), &["hunter2"])
    );
    assert!(out.ends_with(b"]\"}\n"));
}

#[test]
fn ordinary_lines_with_identifiers_and_placeholders_stay() {
    let e = builtin_engine();
    for line in [
        "Nov  2 10:00:01 web-01 sudo:    alice : TTY=pts/2 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/systemctl restart nginx\n",
        "export PWD=/app\n",
        "declare -x OLDPWD=\"/srv/app\"\n",
        "{\"resources\":[{\"ARN\":\"arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf\"}]}\n",
        "password=[FILTERED] token=*** secret=<redacted> passwd=${DB_PASS} api_key=[MASKED]\n",
        "{\"password\": \"[FILTERED]\"}\n",
    ] {
        assert_unchanged(&e, line);
    }
}

#[test]
fn digits_inside_longer_numbers_are_not_cards() {
    let e = builtin_engine();
    for line in [
        "{\"latency\":0.4221165755827173}\n",
        "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_-4980916519894289629 terminating\n",
        "ratio=4111111111111111.25 weight=-4111111111111111 v=1.4111111111111111\n",
    ] {
        assert_unchanged(&e, line);
    }
    let out = e.redact_to_vec(b"card=4111111111111111. ok\n");
    assert!(out.starts_with(b"card=[REDACTED:payment-card-number:"));
}

#[test]
fn markers_in_the_input_are_never_findings() {
    let e = builtin_engine();
    for line in [
        "\"authorization\":\"[REDACTED:bearer-token:k1:ac3445079eda25fc]\" (span=90a340abf866248d)\n",
        "using token [REDACTED:github-classic-token:k1:88f5bd56747f4c91] for api.github.com\n",
        "connecting to postgres://app_user:[REDACTED:database-uri-password:k1:a39149109c3ce5f2]@db.internal:5432/app\n",
        "token=[REDACTED:github-classic-token:old-key:0123456789abcdef] password: [REDACTED:x:k1:0123456789abcdef]\n",
        // Damaged on the way (a quote, a CR inside): still a marker.
        "\"[REDACTED:github-classic-token:k\r1:0000000000000000]\" [REDACTED:\"bearer-token:k1:0123456789abcdef]\n",
    ] {
        assert_unchanged(&e, line);
    }
    // What a rule finds before a marker is still a finding, up to the marker; a finding
    // that starts in a marker is dropped.
    let hay = b"k=abc[REDACTED:x:k1:0123456789abcdef]def z";
    let m = e.matcher().markers.clone().unwrap();
    let mut f = vec![
        Finding {
            start: 2,
            end: 40,
            rule: 0,
        },
        Finding {
            start: 10,
            end: 42,
            rule: 0,
        },
    ];
    cut_markers(hay, &mut f, &m.0, m.1);
    assert_eq!(
        f,
        vec![Finding {
            start: 2,
            end: 5,
            rule: 0
        }]
    );
    // Redacting twice is redacting once.
    let (corpus, _) = crate::corpus::generate_vec(2 << 20, 3, 0.05);
    let once = e.redact_to_vec(&corpus);
    assert!(once != corpus);
    assert!(
        e.redact_to_vec(&once) == once,
        "second pass changed the output"
    );
}

#[test]
fn merge_keeps_disjoint_and_unions_overlaps() {
    let (_, _, rules) = parse_pack(PACK, "t").unwrap();
    let mut f = vec![
        Finding {
            start: 10,
            end: 20,
            rule: 0,
        },
        Finding {
            start: 0,
            end: 5,
            rule: 0,
        },
        Finding {
            start: 15,
            end: 25,
            rule: 1,
        },
        Finding {
            start: 25,
            end: 30,
            rule: 0,
        },
    ];
    merge(&mut f, &rules);
    assert_eq!(
        f,
        vec![
            Finding {
                start: 0,
                end: 5,
                rule: 0
            },
            Finding {
                start: 10,
                end: 25,
                rule: 1
            },
            Finding {
                start: 25,
                end: 30,
                rule: 0
            },
        ]
    );
}

/// `followed_by` is checked before a hit's record is located, and a record is located only
/// for hits that survive it: batches made of keyword, operator and newline pieces in random
/// order must give exactly the findings of their records scanned one by one (a stale or
/// skipped record mapping fails here). Where the `followed_by` window stops only changes
/// how many records reach a regex, not the findings.
#[test]
fn batch_findings_equal_per_record_findings_on_generated_text() {
    let m = builtin_engine().matcher().clone();
    let pieces: &[&str] = &[
        "token",
        "password",
        "\"auth\"",
        "curl",
        " -u ",
        "=",
        ":",
        " ",
        "\n",
        "\n",
        "x9",
        "Kq7Lw2Xm9Zp4Rt8V",
        "bot",
        ":AA",
        "1234567890",
        "pat",
        ".",
        "@",
        "://u",
        "db.internal",
        "\"",
        "\\\"",
        "secret",
        "api_key",
    ];
    let mut rng = crate::corpus::Rng(5);
    for round in 0..300 {
        let mut batch = String::new();
        for _ in 0..(rng.next_u64() % 60) {
            batch.push_str(pieces[(rng.next_u64() % pieces.len() as u64) as usize]);
        }
        let whole: Vec<(usize, usize)> = m
            .find(batch.as_bytes())
            .iter()
            .map(|f| (f.start, f.end))
            .collect();
        let mut one_by_one = Vec::new();
        let mut at = 0;
        for rec in batch.split('\n') {
            for f in m.find(rec.as_bytes()) {
                one_by_one.push((at + f.start, at + f.end));
            }
            at += rec.len() + 1;
        }
        // Spans only (rule ids are internal): no raw text in the failure message.
        assert_eq!(
            whole,
            one_by_one,
            "round {round}: batch of {} bytes",
            batch.len()
        );
    }
}
