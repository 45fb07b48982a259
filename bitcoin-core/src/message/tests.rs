//! The messages against the reference's bytes and Go's decoding rules.

use super::*;
use quickcheck::quickcheck;

fn request(data: &str, lower: u64, upper: u64) -> Message {
    Message::Request {
        data: data.to_string(),
        lower,
        upper,
    }
}

#[test]
fn encodes_go_escapes() {
    let message = request(
        "a\"b\\c\n\r\t\x08\x0c\x01\x1f<>&\u{2028}\u{2029}\u{7f}é€",
        1,
        2,
    );
    let expected = concat!(
        r#"{"Type":1,"Data":"a\"b\\c\n\r\t\b\f\u0001\u001f\u003c\u003e\u0026\u2028\u2029"#,
        "\u{7f}é€\",\"Lower\":1,\"Upper\":2,\"Hash\":0,\"Nonce\":0}"
    );
    assert_eq!(String::from_utf8(message.encode()).unwrap(), expected);
    assert_eq!(Message::decode(expected.as_bytes()).unwrap(), message);
}

#[test]
fn decodes_leniently_like_go() {
    let cases: &[(&str, Message)] = &[
        ("{}", Message::Join),
        (
            r#"{"type":1,"DATA":"x","lower":5,"uPPer":6}"#,
            request("x", 5, 6),
        ),
        (
            r#"{"Type":2,"Haſh":7,"Nonce":8}"#,
            Message::Result { hash: 7, nonce: 8 },
        ),
        (
            r#" {"Type":1,"Extra":[1,{"a":null}],"Data":null,"Lower":1,"Lower":2} "#,
            request("", 2, 0),
        ),
        (r#"{"Type":-0,"Hash":null}"#, Message::Join),
        (
            r#"{"Type":2,"Hash":18446744073709551615,"Nonce":0}"#,
            Message::Result {
                hash: u64::MAX,
                nonce: 0,
            },
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(
            Message::decode(text.as_bytes()).as_ref(),
            Ok(expected),
            "{text}"
        );
    }
    let invalid = b"{\"Type\":1,\"Data\":\"a\xe2\x82b\xff\"}";
    assert_eq!(
        Message::decode(invalid),
        Ok(request("a\u{fffd}\u{fffd}b\u{fffd}", 0, 0))
    );
}

#[test]
fn rejects_what_go_rejects() {
    let field_errors: &[(&str, Field)] = &[
        (r#"{"Type":1.0}"#, Field::Type),
        (r#"{"Type":"1"}"#, Field::Type),
        (r#"{"Type":1e0}"#, Field::Type),
        (r#"{"Type":9223372036854775808}"#, Field::Type),
        (r#"{"Lower":-1}"#, Field::Lower),
        (r#"{"Upper":-0}"#, Field::Upper),
        (r#"{"Hash":18446744073709551616}"#, Field::Hash),
        (r#"{"Nonce":1.5}"#, Field::Nonce),
        (r#"{"Nonce":true}"#, Field::Nonce),
        (r#"{"Data":5}"#, Field::Data),
        (r#"{"Data":["x"]}"#, Field::Data),
    ];
    for (text, field) in field_errors {
        assert_eq!(
            Message::decode(text.as_bytes()),
            Err(MessageError::Field(*field)),
            "{text}"
        );
    }
    for text in [r#"{"Type":5}"#, r#"{"Type":-1}"#] {
        assert!(matches!(
            Message::decode(text.as_bytes()),
            Err(MessageError::UnknownType(_))
        ));
    }
    for text in [
        "",
        "null",
        "[]",
        "5",
        "\"x\"",
        "{",
        r#"{"Type":0} x"#,
        r#"{"Type":01}"#,
    ] {
        assert!(
            matches!(Message::decode(text.as_bytes()), Err(MessageError::Json(_))),
            "{text}"
        );
    }
}

#[test]
fn an_echoed_range_is_read_beside_the_result() {
    let echo = br#"{"Type":2,"Data":"","Lower":5,"Upper":9,"Hash":7,"Nonce":6}"#;
    assert_eq!(
        Message::decode_with_range(echo),
        Ok((Message::Result { hash: 7, nonce: 6 }, (5, 9)))
    );
    let plain = Message::Result { hash: 7, nonce: 6 }.encode();
    assert_eq!(
        Message::decode_with_range(&plain),
        Ok((Message::Result { hash: 7, nonce: 6 }, (0, 0)))
    );
}

#[test]
fn progress_is_an_extension_only_clients_that_ask_see() {
    let p = Message::Progress {
        covered: 5,
        total: 10,
        rate: 3,
    };
    let bytes = br#"{"Type":4,"Data":"","Lower":5,"Upper":10,"Hash":3,"Nonce":0}"#;
    assert_eq!(p.encode(), bytes);
    assert_eq!(Message::decode(bytes), Ok(p));
    let asks = |text: &str| Message::decode_full(text.as_bytes()).map(|d| d.progress);
    // The reference's Request never has the key.
    let plain = request("x", 0, 9).encode();
    assert_eq!(Message::decode_full(&plain).map(|d| d.progress), Ok(false));
    assert_eq!(
        asks(r#"{"Type":1,"Data":"x","Upper":9,"Progress":true}"#),
        Ok(true)
    );
    assert_eq!(
        asks(r#"{"Type":1,"Data":"x","Upper":9,"progress":true}"#),
        Ok(true)
    );
    // Any other value does not ask, and is no error (the reference ignores the key).
    for value in ["false", "1", "\"true\"", "null", "{}"] {
        let text = format!(r#"{{"Type":1,"Data":"x","Upper":9,"Progress":{value}}}"#);
        assert_eq!(asks(&text), Ok(false), "{text}");
    }
    assert_eq!(
        Message::decode(br#"{"Type":5}"#),
        Err(MessageError::UnknownType(5))
    );
}

quickcheck! {
    fn round_trips(data: String, lower: u64, upper: u64, hash: u64, nonce: u64) -> bool {
        let progress = Message::Progress { covered: lower, total: upper, rate: hash };
        let cancel = Message::Cancel { data: data.clone(), lower, upper };
        [Message::Join, request(&data, lower, upper), Message::Result { hash, nonce }, progress, cancel]
            .into_iter()
            .all(|message| Message::decode(&message.encode()).ok() == Some(message))
    }

    fn encoding_is_valid_json_with_the_same_text(data: String) -> bool {
        let bytes = request(&data, 0, 1).encode();
        let value: serde_json::Value = match serde_json::from_slice(&bytes) {
            Ok(value) => value,
            Err(_) => return false,
        };
        value["Data"] == serde_json::Value::String(data)
    }

    fn arbitrary_bytes_never_panic(bytes: Vec<u8>) -> bool {
        let _ = Message::decode(&bytes);
        true
    }
}
