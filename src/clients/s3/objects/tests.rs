#[test]
fn uploads_are_read_from_a_listing() {
    let body = "<ListMultipartUploadsResult><Bucket>b</Bucket>\
        <Upload><Key>a &amp;lt; b.bin</Key><UploadId>id-1</UploadId></Upload>\
        <Upload><Key>a.bin</Key><UploadId>id-2</UploadId><Initiated>x</Initiated></Upload>\
        </ListMultipartUploadsResult>";
    assert_eq!(
        super::uploads_in(body),
        [
            ("a &lt; b.bin".to_string(), "id-1".to_string()),
            ("a.bin".to_string(), "id-2".to_string())
        ]
    );
    assert!(super::uploads_in("<ListMultipartUploadsResult/>").is_empty());
}

use super::*;

#[test]
fn copy_sources_are_percent_encoded() {
    assert_eq!(encode_key("a b (2).pdf"), "a%20b%20%282%29.pdf");
    assert_eq!(encode_key("я.txt"), "%D1%8F.txt");
    assert_eq!(encode_key("x/y~z"), "x/y~z");
}

#[test]
fn etags_and_errors_are_read_from_the_xml() {
    let ok = "<CopyPartResult><ETag>&quot;abc&quot;</ETag></CopyPartResult>";
    assert_eq!(xml_value(ok, "ETag").as_deref(), Some("\"abc\""));
    let err = "<Error><Code>NoSuchKey</Code><Message>gone</Message></Error>";
    assert_eq!(error_code(err), "NoSuchKey: gone");
}
