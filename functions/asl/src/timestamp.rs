//! ASL timestamps: RFC 3339 with an uppercase `T` between date and time and an uppercase
//! `Z` when there is no numeric offset.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

pub(crate) fn parse(text: &str) -> Option<OffsetDateTime> {
    // RFC 3339 allows lowercase `t`/`z` (and the parser a space); the ASL profile does not.
    if text.contains(['t', 'z']) || text.as_bytes().get(10) != Some(&b'T') {
        return None;
    }
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

/// The format Step Functions uses in the context object, e.g. `2019-03-26T20:14:13.192Z`.
pub(crate) fn format(at: OffsetDateTime) -> String {
    let utc = at.to_offset(UtcOffset::UTC);
    utc.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    ))
    .unwrap_or_else(|_| utc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn parses_the_asl_profile_only() {
        assert_eq!(
            parse("2016-08-18T17:33:00Z"),
            Some(datetime!(2016-08-18 17:33:00 UTC))
        );
        assert_eq!(
            parse("2016-08-18T19:33:00.5+02:00"),
            Some(datetime!(2016-08-18 17:33:00.5 UTC))
        );
        for bad in [
            "2016-08-18t17:33:00Z",
            "2016-08-18T17:33:00z",
            "2016-08-18 17:33:00Z",
            "2016-08-18T17:33Z",
            "2016-08-18",
            "yesterday",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn formats_with_millisecond_precision_in_utc() {
        assert_eq!(
            format(datetime!(2019-03-26 22:14:13.192_456 +02:00)),
            "2019-03-26T20:14:13.192Z"
        );
    }
}
