//! Validator tests.

use super::context::*;
use super::placeholders::*;
use super::values::*;
use super::*;

/// `is_not_a_value` on the value after `key=` in `record`.
fn not_value(record: &str, value: &str) -> bool {
    let start = record.find(value).expect("value in record");
    is_not_a_value(record.as_bytes(), start..start + value.len())
}

#[test]
fn code_references_state_words_and_dumps_are_not_values() {
    for (rec, v) in [
        ("password = request.form[\"pw\"]", "request.form["),
        ("password = getPassword()", "getPassword()"),
        ("token = os.environ[\"X\"]", "os.environ["),
        ("api_key = config.get(\"k\")", "config.get("),
        ("token=env.GITHUB_TOKEN", "env.GITHUB_TOKEN"),
        ("token=process.env.API_TOKEN", "process.env.API_TOKEN"),
        ("password = settings.DB_PASSWORD;", "settings.DB_PASSWORD"),
        ("password: params[:password]", "params[:password]"),
        ("password = ENV['DB']", "ENV["),
        ("char *password = (char*)malloc(64);", "(char*)malloc(64)"),
        ("password = new PasswordEncoder()", "new"),
        (
            "token=AppWindowToken{4a3b2c1 token=x}",
            "AppWindowToken{4a3b2c1",
        ),
        ("user=User{id=42, password=null}", "User{id=42"),
        (
            "creds=com.acme.Creds@1b6d3586 ok",
            "com.acme.Creds@1b6d3586",
        ),
        ("(using password: YES)", "YES"),
        ("password: string;", "string"),
        ("Authorization: Bearer", "Bearer"),
        ("Token: {", "{"),
        ("password=--", "--"),
    ] {
        assert!(not_value(rec, v), "{rec:?}: {v:?} taken for a value");
    }
    // Values that only resemble code stay secrets.
    for (rec, v) in [
        ("password=Summer(2024)", "Summer(2024)"),
        ("password=hunter2", "hunter2"),
        ("password=Welcome@123456", "Welcome@123456"),
        ("password=my.dog.rex", "my.dog.rex"),
        ("password=Pass{123}", "Pass{123}"),
        ("password=newpass1", "newpass1"),
        ("password=new", "new"),
        ("password=!@#$%^&*", "!@#$%^&*"),
        ("password=Zx9q7w.Lp2", "Zx9q7w.Lp2"),
    ] {
        assert!(
            !not_value(rec, v),
            "{rec:?}: value {} dropped",
            &v[..4.min(v.len())]
        );
    }
}

#[test]
fn prose_needs_a_whole_word_after_it() {
    let prose = |rec: &str, v: &str| {
        let start = rec.find(v).unwrap();
        is_prose(rec.as_bytes(), start..start + v.len())
    };
    assert!(prose("Secret: illegal base64 data at byte 12", "illegal"));
    assert!(prose("*v1.Secret: secrets is forbidden", "secrets"));
    // Found by the generated-input property (idempotence): what follows is a token, not
    // a word, and replacing it must not change the call.
    assert!(!prose("password: logged sk-proj-abc", "logged"));
    assert!(!prose(
        "password: logged [REDACTED:x:k1:0123456789abcdef]",
        "logged"
    ));
    assert!(!prose("password: hunter user: bob", "hunter"));
}

#[test]
fn operator_tails_and_format_directives() {
    let tail = |rec: &str, at: usize| is_operator_tail(rec.as_bytes(), at..rec.len());
    assert!(tail("password:=x", 9));
    assert!(tail("password==x", 9));
    assert!(tail("password!=x", 9));
    assert!(tail("password=>x", 9));
    assert!(tail("Token::new", 6));
    assert!(!tail("password=x", 9));
    assert!(!tail("password:x", 9));
    for p in [
        "%s",
        "%v",
        "%-8s",
        "%.*s",
        "%d",
        "%q",
        "$1",
        "$password",
        "?",
        "~",
    ] {
        assert!(is_placeholder(p.as_bytes()), "{p}");
    }
    for s in ["%sx9Lq", "%zz", "$2b$12$abc", "?x"] {
        assert!(!is_placeholder(s.as_bytes()), "{}", &s[..2]);
    }
}

#[test]
fn arns_working_directories_and_hidden_markers_are_not_secrets() {
    let ctx = |rec: &str, needle: &str| {
        let s = rec.find(needle).unwrap();
        is_identifier_context(rec.as_bytes(), s..s + needle.len())
    };
    assert!(ctx(
        r#"{"ARN":"arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf"}"#,
        "prod/db-AbCdEf"
    ));
    assert!(ctx(
        "sudo: alice : TTY=pts/2 ; PWD=/home/alice ; USER=root",
        "/home/alice"
    ));
    assert!(ctx("declare -x OLDPWD=\"/app\"", "/app"));
    assert!(!ctx("DB_PWD=hunter2x", "hunter2x"));
    assert!(!ctx("PWD=Tr0ub4dor", "Tr0ub4dor"));
    assert!(!ctx("db_pwd=/x9!Qz", "/x9!Qz"));
    for p in [
        "[FILTERED]",
        "[MASKED]",
        "***",
        "(hidden)",
        "(null)",
        "<redacted>",
    ] {
        assert!(is_placeholder(p.as_bytes()), "{p}");
    }
    assert!(!is_placeholder(b"[a1b2c3]"));
    assert!(!is_placeholder(b"[") && !is_placeholder(b"[]x"));
}

#[test]
fn json_scalars_after_member_names() {
    let at = |rec: &str, needle: &str| {
        let s = rec.find(needle).unwrap();
        is_json_scalar(rec.as_bytes(), s..s + needle.len())
    };
    assert!(at(r#"{"password": null}"#, "null"));
    assert!(at(r#"{"secret":true,"a":1}"#, "true"));
    assert!(at(r#"{"token": 12345}"#, "12345"));
    assert!(at(r#"{"a":{"passwd":null}}}"#, "null"));
    assert!(at(r#"{"password": null}"#, "null}"));
    assert!(at(r#"{"k":-1.5e-7]"#, "-1.5e-7]"));
    assert!(at(r#"{\"password\":false}"#, "false"));
    assert!(at(r#"{"card": 4111111111111111}"#, "4111111111111111}"));
    assert!(at(r#"{"password":[]}"#, "[]"));
    assert!(at(r#"{"password": {}}"#, "{}"));
    assert!(!at(r#"{"password": {noop}hunter2}"#, "{noop}"));
    assert!(!at(
        r#""pan": 4111 1111 1111 1111 reason=x"#,
        "4111 1111 1111 1111"
    ));
    // Strings, unquoted words and things that only start like a literal are not.
    assert!(!at(r#"{"password": "null"}"#, "null\""));
    assert!(!at(r#"{"password": nullpointer}"#, "nullp"));
    assert!(!at(r#"{"password": 123abc}"#, "123abc"));
    assert!(!at("password: null", "null"));
    assert!(!at("password=12345", "12345"));
}

fn github_token(prefix: &str, random: &str) -> String {
    let check = base62_6(crc32fast::hash(random.as_bytes()));
    format!("{prefix}{random}{}", std::str::from_utf8(&check).unwrap())
}

#[test]
fn crc32_base62_accepts_valid_and_rejects_tampered() {
    let t = github_token("ghp_", "aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1");
    assert_eq!(t.len(), 40);
    assert!(Validator::Crc32Base62.check(t.as_bytes()));
    let mut bad = t.clone().into_bytes();
    bad[10] = if bad[10] == b'x' { b'y' } else { b'x' };
    assert!(!Validator::Crc32Base62.check(&bad));
    assert!(!Validator::Crc32Base62.check(b"ghp_short"));
}

#[test]
fn base62_encoding_is_digits_upper_lower() {
    assert_eq!(&base62_6(0), b"000000");
    assert_eq!(&base62_6(61), b"00000z");
    assert_eq!(&base62_6(62), b"000010");
    assert_eq!(&base62_6(u32::MAX), b"4gfFC3");
}

#[test]
fn luhn_cards() {
    assert!(luhn(b"4111111111111111"));
    assert!(luhn(b"4111 1111 1111 1111"));
    assert!(luhn(b"3782-822463-10005"));
    assert!(!luhn(b"4111111111111112"));
    assert!(!luhn(b"411111111111")); // too short
}

#[test]
fn jwt_structure() {
    let ok = b"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
    assert!(Validator::Jwt.check(ok));
    // Header without "alg".
    assert!(!Validator::Jwt.check(b"eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiIxIn0.sig"));
    assert!(!Validator::Jwt.check(b"eyJhbGciOi.notjson.sig"));
    assert!(!Validator::Jwt.check(b"a.b"));
}

#[test]
fn basic_auth_decodes_user_colon_pass() {
    assert!(Validator::BasicAuth.check(b"YWxhZGRpbjpvcGVuc2VzYW1l")); // aladdin:opensesame
    assert!(!Validator::BasicAuth.check(b"aGVsbG8gd29ybGQ=")); // no colon
    assert!(!Validator::BasicAuth.check(b"not base64!"));
}

#[test]
fn iban_mod97() {
    assert!(Validator::Iban.check(b"DE89370400440532013000"));
    assert!(Validator::Iban.check(b"GB82 WEST 1234 5698 7654 32"));
    assert!(!Validator::Iban.check(b"DE89370400440532013001"));
    assert!(!Validator::Iban.check(b"XX00"));
}

#[test]
fn ssn_ranges() {
    assert!(Validator::UsSsn.check(b"123-45-6789"));
    assert!(Validator::UsSsn.check(b"123456789"));
    for bad in [
        "000-12-3456",
        "666-12-3456",
        "900-12-3456",
        "123-00-4567",
        "123-45-0000",
        "12-345-678",
    ] {
        assert!(!Validator::UsSsn.check(bad.as_bytes()), "{bad}");
    }
}

#[test]
fn pypi_tokens_name_pypi_org() {
    // "AgEIcHlwaS5vcmc" is base64url of 02 01 08 "pypi.org".
    assert!(Validator::PypiMacaroon.check(b"pypi-AgEIcHlwaS5vcmcCJGFiY2RlZg"));
    assert!(!Validator::PypiMacaroon.check(b"pypi-AgEIdGVzdC5vcmcCJGFiY2RlZg"));
    assert!(!Validator::PypiMacaroon.check(b"npm_AgEIcHlwaS5vcmc"));
}

#[test]
fn bech32_checksums() {
    // BIP-173 test vectors.
    assert!(bech32(b"A12UEL5L"));
    assert!(bech32(b"abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw"));
    assert!(!bech32(b"abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxx"));
    assert!(!bech32(b"nosep"));
}

#[test]
fn gitlab_routable_tokens() {
    // Made here with the published construction (CRC32 over prefix, payload and length).
    for t in [
        "glpat-YzoxCm86MnMKdTo5emvn7udhXvNfMOSbSC4VyudQEA.160uhi63i",
        "glrt-t1_YzoxCm86NQpwOmFiByAeEmF7D-2n4WR3lv8CKxA.130pw0zus",
        "glpat-bzoxYgp1OjNm6o7QKoKhdZMPIzfNN5TFIhA.0z179c8h9",
    ] {
        assert!(Validator::GitlabRoutable.check(t.as_bytes()), "{t}");
        let mut bad = t.as_bytes().to_vec();
        bad[8] ^= 1;
        assert!(!Validator::GitlabRoutable.check(&bad));
    }
    assert!(!Validator::GitlabRoutable.check(b"glpat-abcdefghijklmnopqrst"));
}

#[test]
fn pem_armour_checks_labels_and_body() {
    let ok = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\nVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n-----END RSA PRIVATE KEY-----";
    assert!(Validator::PemArmour.check(ok.as_bytes()));
    assert!(Validator::PemArmour.check(ok.replace("\n", "\\n").as_bytes()));
    let enc = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,3F17F5316E2BAC89\n\nMIIEpAIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgO\n-----END RSA PRIVATE KEY-----";
    assert!(Validator::PemArmour.check(enc.as_bytes()));
    assert!(!Validator::PemArmour.check(ok.replace("END RSA", "END EC").as_bytes()));
    assert!(!Validator::PemArmour
        .check(b"-----BEGIN PRIVATE KEY----- paste your key here -----END PRIVATE KEY-----"));
    assert!(!Validator::PemArmour
        .check(b"-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ\n-----END CERTIFICATE-----"));
    assert!(Validator::PemArmour.check(b"-----BEGIN EC PRIVATE KEY-----"));
    // A truncated block (no END) still counts.
    assert!(Validator::PemArmour
        .check(b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ"));
}

#[test]
fn entropy() {
    assert_eq!(shannon_entropy(b"aaaa"), 0.0);
    assert!((shannon_entropy(b"abcd") - 2.0).abs() < 1e-9);
}

#[test]
fn placeholders() {
    for p in [
        "${DB_PASSWORD}",
        "$DB_PASSWORD",
        "{{ vault.secret }}",
        "<redacted>",
        "<your-token>",
        "****",
        "xxxxxxxx",
        "sk_test_xxxx",
        "null",
        "None",
        "[REDACTED:generic-password:k1:0011223344556677]",
        "0000000",
    ] {
        assert!(is_placeholder(p.as_bytes()), "{p} should be a placeholder");
    }
    for s in [
        "changeme",
        "hunter2",
        "s3cr3t!",
        "$ecretPa55",
        "wJalrXUtnFEMI/xXx0bPxRfiCY",
    ] {
        assert!(!is_placeholder(s.as_bytes()), "{s} is a secret");
    }
}

#[test]
fn names_round_trip() {
    for (name, v, _) in Validator::ALL {
        assert_eq!(Validator::from_name(name), Some(*v));
        assert_eq!(v.name(), *name);
    }
    assert_eq!(Validator::from_name("nope"), None);
}

#[test]
fn mixed_alnum_wants_all_three_classes() {
    assert!(mixed_alnum(b"Vq3TAHEqGXhB"));
    assert!(!mixed_alnum(b"3f2a9c0e5d7b41a8b6c2d9e0f1a2b3c4")); // hex digest
    assert!(!mixed_alnum(b"9D5E2F6A-1B3C-4D5E-8F9A-0B1C2D3E4F5A")); // UUID
    assert!(!mixed_alnum(b"CorrectHorseBatteryStaple")); // words, no digit
    assert!(!mixed_alnum(b"orders_created_v2")); // identifier
    assert!(Validator::from_name("mixed-alnum") == Some(Validator::MixedAlnum));
}

#[test]
fn contractions_and_name_service_sources_are_not_values() {
    assert!(not_value("ext master secret: don't enable when", "don"));
    assert!(not_value(
        "gnutls_x509_crq_set_challenge_password: don't accept",
        "don"
    ));
    assert!(not_value("password: can't be empty", "can"));
    assert!(not_value("passwd:         files systemd", "files"));
    // A password with an apostrophe in it is still one.
    assert!(!not_value("password: Rq7'tLm2", "Rq7"));
    assert!(!not_value("password=hunter'x9", "hunter"));
}

#[test]
fn authorization_scheme_words_are_not_values() {
    assert!(not_value("Authorization: sso-key Ab3dEf:Gh5iJk", "sso-key"));
    assert!(not_value("authorization=ApiKey essu_Zq8rT2wXk9", "ApiKey"));
    // A bare credential in the header is a value; so is a single word at the end.
    assert!(!not_value(
        "Authorization: Zq8rT2wXk9Lm4Vb7",
        "Zq8rT2wXk9Lm4Vb7"
    ));
    assert!(!not_value(
        "authorization=Zq8rT2wXk9 user=bob",
        "Zq8rT2wXk9"
    ));
}
