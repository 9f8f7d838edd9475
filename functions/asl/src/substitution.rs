//! `${Name}` placeholders, replaced in the definition text before it is parsed, the way
//! CloudFormation's `DefinitionSubstitutions` does.

use std::collections::BTreeMap;

use crate::error::DefinitionError;

pub(crate) fn substitute(
    definition: &str,
    substitutions: &BTreeMap<String, String>,
) -> Result<String, DefinitionError> {
    let mut out = String::with_capacity(definition.len());
    let mut rest = definition;
    let mut offset = 0;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or(DefinitionError::UnterminatedPlaceholder(offset + start))?;
        let name = &after[..end];
        let value = substitutions
            .get(name)
            .ok_or_else(|| DefinitionError::UnknownPlaceholder(name.to_owned()))?;
        out.push_str(value);
        let consumed = start + 2 + end + 1;
        offset += consumed;
        rest = &rest[consumed..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn replaces_every_placeholder_and_leaves_other_text_alone() {
        let map = subs(&[
            ("BuildArn", "arn:aws:lambda:eu-west-1:1:function:build"),
            ("X", "${Y}"),
        ]);
        assert_eq!(
            substitute(r#"{"R": "${BuildArn}", "S": "${BuildArn}:$LATEST", "P": "$.a", "F": "{}", "X": "${X}"}"#, &map)
                .unwrap(),
            r#"{"R": "arn:aws:lambda:eu-west-1:1:function:build", "S": "arn:aws:lambda:eu-west-1:1:function:build:$LATEST", "P": "$.a", "F": "{}", "X": "${Y}"}"#
        );
        assert_eq!(
            substitute("no placeholders", &map).unwrap(),
            "no placeholders"
        );
    }

    #[test]
    fn unknown_and_unterminated_placeholders_are_errors() {
        let map = subs(&[("Known", "v")]);
        assert!(matches!(
            substitute("${Known} ${Unknown}", &map),
            Err(DefinitionError::UnknownPlaceholder(name)) if name == "Unknown"
        ));
        assert!(matches!(
            substitute("${Known} ${Open", &map),
            Err(DefinitionError::UnterminatedPlaceholder(9))
        ));
    }
}
