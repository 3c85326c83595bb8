//! A custom user-profile attribute drawn on the registration and
//! update-profile pages as Keycloak's themes draw it from the attribute's
//! annotations: `inputType` picks the control (text and the HTML5 input
//! types, textarea, select, radio buttons, checkboxes), the placeholder,
//! helper texts and HTML limits come from the `inputType...` and
//! `inputHelperText...` annotations. Plain HTML, no script: a multivalued
//! text attribute gets one input per value and an empty one for another.

use super::esc;
use crate::profile_rules::FormField;
use serde_json::Value;

/// The HTML5 input types Keycloak's `html5-*` input types name.
const HTML5_TYPES: [&str; 10] = [
    "email",
    "tel",
    "url",
    "number",
    "range",
    "datetime-local",
    "date",
    "month",
    "time",
    "week",
];

/// Annotation and the HTML attribute it sets on the control.
const LIMITS: [(&str, &str); 10] = [
    ("inputTypePlaceholder", "placeholder"),
    ("inputTypeSize", "size"),
    ("inputTypeCols", "cols"),
    ("inputTypeRows", "rows"),
    ("inputTypeMaxlength", "maxlength"),
    ("inputTypeMinlength", "minlength"),
    ("inputTypeMin", "min"),
    ("inputTypeMax", "max"),
    ("inputTypeStep", "step"),
    ("inputTypePattern", "pattern"),
];

/// The labelled control for `f` holding `values`.
pub fn render(f: &FormField, values: &[String]) -> String {
    let n = esc(&f.name);
    let text = |key: &str| {
        f.annotations
            .get(key)
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty() && !t.starts_with("${"))
    };
    let helper = |key: &str, id: &str| {
        text(key).map(|t| format!("<p class=\"helper\" id=\"{n}-{id}\">{}</p>", esc(t)))
    };
    let before = helper("inputHelperTextBefore", "before");
    let after = helper("inputHelperTextAfter", "after");
    let described: Vec<String> = [(&before, "before"), (&after, "after")]
        .iter()
        .filter(|(h, _)| h.is_some())
        .map(|(_, id)| format!("{n}-{id}"))
        .collect();
    let described = if described.is_empty() {
        String::new()
    } else {
        format!(" aria-describedby=\"{}\"", described.join(" "))
    };
    let mut attrs = described.clone();
    for (annotation, html) in LIMITS {
        let v = match f.annotations.get(annotation) {
            Some(Value::String(s)) if !s.is_empty() && !s.starts_with("${") => s.clone(),
            Some(Value::Number(x)) => x.to_string(),
            _ => continue,
        };
        attrs.push_str(&format!(" {html}=\"{}\"", esc(&v)));
    }
    let req = if f.required { " required" } else { "" };
    let chosen = |v: &str| values.iter().any(|x| x == v);
    let first = values.first().map_or("", String::as_str);
    let label = format!("<label for=\"{n}\">{}</label>", esc(&f.label));
    let control = match f.input.as_str() {
        "textarea" => format!(
            "<textarea id=\"{n}\" name=\"{n}\"{attrs}{req}>{}</textarea>",
            esc(first)
        ),
        "select" | "multiselect" if !f.options.is_empty() => {
            let multiple = f.input == "multiselect" && f.multivalued;
            // A single choice starts unset, as Keycloak's select does.
            let mut options = if multiple {
                String::new()
            } else {
                "<option value=\"\"></option>".to_owned()
            };
            for (v, l) in &f.options {
                options.push_str(&format!(
                    "<option value=\"{}\"{}>{}</option>",
                    esc(v),
                    if chosen(v) { " selected" } else { "" },
                    esc(l)
                ));
            }
            format!(
                "<select id=\"{n}\" name=\"{n}\"{}{attrs}{req}>{options}</select>",
                if multiple { " multiple" } else { "" }
            )
        }
        "select-radiobuttons" | "multiselect-checkboxes" if !f.options.is_empty() => {
            let checkbox = f.input == "multiselect-checkboxes" && f.multivalued;
            let (kind, req) = if checkbox {
                ("checkbox", "")
            } else {
                ("radio", req)
            };
            let mut boxes = String::new();
            for (i, (v, l)) in f.options.iter().enumerate() {
                boxes.push_str(&format!(
                    "<input type=\"{kind}\" id=\"{n}-{i}\" name=\"{n}\" value=\"{}\"{}{req}><label for=\"{n}-{i}\">{}</label>",
                    esc(v),
                    if chosen(v) { " checked" } else { "" },
                    esc(l)
                ));
            }
            // A group of boxes is labelled by its legend.
            return format!(
                "<fieldset id=\"{n}\"{described}><legend>{}</legend>{}{boxes}{}</fieldset>",
                esc(&f.label),
                before.unwrap_or_default(),
                after.unwrap_or_default()
            );
        }
        other => {
            let kind = other
                .strip_prefix("html5-")
                .filter(|t| HTML5_TYPES.contains(t))
                .unwrap_or("text");
            let input = |id: bool, v: &str, req: &str| {
                let id = if id {
                    format!(" id=\"{n}\"")
                } else {
                    String::new()
                };
                format!(
                    "<input{id} name=\"{n}\" type=\"{kind}\"{attrs}{req} value=\"{}\">",
                    esc(v)
                )
            };
            if f.multivalued {
                // Each value, then an empty field for one more.
                let mut inputs: String = values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| input(i == 0, v, if i == 0 { req } else { "" }))
                    .collect();
                inputs.push_str(&input(
                    values.is_empty(),
                    "",
                    if values.is_empty() { req } else { "" },
                ));
                inputs
            } else {
                input(true, first, req)
            }
        }
    };
    format!(
        "{label}{}{control}{}",
        before.unwrap_or_default(),
        after.unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(input: &str, multivalued: bool, annotations: Value) -> FormField {
        FormField {
            name: "dept".into(),
            label: "Department".into(),
            required: true,
            multivalued,
            input: input.into(),
            options: vec![
                ("sales".into(), "Sales".into()),
                ("ops".into(), "Operations <24/7>".into()),
            ],
            annotations: annotations.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn annotations_pick_the_control() {
        let none = json!({});
        let html = render(&field("select", false, none.clone()), &["ops".into()]);
        assert!(html.starts_with("<label for=\"dept\">Department</label><select id=\"dept\" name=\"dept\" required><option value=\"\"></option>"), "{html}");
        assert!(
            html.contains("<option value=\"ops\" selected>Operations &lt;24/7&gt;</option>"),
            "{html}"
        );
        assert!(!html.contains("multiple"));

        let html = render(
            &field("multiselect", true, none.clone()),
            &["sales".into(), "ops".into()],
        );
        assert!(
            html.contains("<select id=\"dept\" name=\"dept\" multiple required>"),
            "{html}"
        );
        assert_eq!(html.matches(" selected").count(), 2);

        let html = render(
            &field("multiselect-checkboxes", true, none.clone()),
            &["ops".into()],
        );
        assert!(html.contains("<legend>Department</legend>"), "{html}");
        assert!(html.contains("<input type=\"checkbox\" id=\"dept-1\" name=\"dept\" value=\"ops\" checked><label for=\"dept-1\">"), "{html}");
        assert!(
            !html.contains("required"),
            "a box each need not be ticked: {html}"
        );

        let html = render(&field("select-radiobuttons", false, none.clone()), &[]);
        assert_eq!(html.matches("type=\"radio\"").count(), 2, "{html}");
        assert_eq!(html.matches(" required").count(), 2, "{html}");

        let notes = json!({"inputTypePlaceholder": "e.g. sales", "inputHelperTextBefore": "Your team",
                           "inputHelperTextAfter": "${profile.help}", "inputTypeMaxlength": 20});
        let html = render(&field("html5-email", false, notes), &["a\"b".into()]);
        assert_eq!(
            html,
            "<label for=\"dept\">Department</label><p class=\"helper\" id=\"dept-before\">Your team</p>\
<input id=\"dept\" name=\"dept\" type=\"email\" aria-describedby=\"dept-before\" placeholder=\"e.g. sales\" maxlength=\"20\" required value=\"a&quot;b\">"
        );
        let html = render(
            &field("textarea", false, json!({"inputTypeRows": "4"})),
            &["x".into()],
        );
        assert!(
            html.ends_with("<textarea id=\"dept\" name=\"dept\" rows=\"4\" required>x</textarea>"),
            "{html}"
        );
        // Unknown types and a select without options are text fields.
        for input in ["html5-bogus", "select"] {
            let mut f = field(input, false, json!({}));
            f.options.clear();
            assert!(render(&f, &[]).contains("type=\"text\""), "{input}");
        }
        // Multivalued text: each value and one more, the label on the first.
        let html = render(&field("text", true, json!({})), &["a".into(), "b".into()]);
        assert_eq!(html.matches("<input").count(), 3, "{html}");
        assert_eq!(html.matches("id=\"dept\"").count(), 1, "{html}");
    }
}
