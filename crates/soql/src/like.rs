//! `LIKE` matching: `%` is any run of characters, `_` exactly one, `\%` and `\_` the
//! characters themselves; matching ignores case, as on the platform.
//!
//! String literals keep `\%`, `\_` and `\\` escaped after lexing (see
//! `literal::unescape_string`) so this module can tell wildcards from characters;
//! [`plain`] turns such a literal into the text it stands for outside `LIKE`.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pat {
    Any,
    One,
    Char(char),
}

fn compile(pattern: &str) -> Vec<Pat> {
    let mut out = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        out.push(match c {
            '%' => Pat::Any,
            '_' => Pat::One,
            '\\' => Pat::Char(chars.next().unwrap_or('\\')),
            c => Pat::Char(c),
        });
    }
    out
}

/// The literal text of a lexed string: `\%`, `\_` and `\\` become `%`, `_` and `\`.
pub fn plain(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.push(chars.next().unwrap_or('\\'));
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether `value` matches the LIKE `pattern` (in lexed form), ignoring case.
pub fn like_match(pattern: &str, value: &str) -> bool {
    let pat = compile(&pattern.to_lowercase());
    let text: Vec<char> = value.to_lowercase().chars().collect();
    // Greedy matching with one backtrack point: linear in practice, O(n·m) worst case,
    // never exponential.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pat.get(p) {
            Some(Pat::Any) => {
                star = Some((p, t));
                p += 1;
            }
            Some(Pat::One) => {
                p += 1;
                t += 1;
            }
            Some(Pat::Char(c)) if *c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pat[p..].iter().all(|x| *x == Pat::Any)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(like_match("acme%", "Acme Corp"));
        assert!(like_match("%corp", "Acme Corp"));
        assert!(like_match("%ME C%", "Acme Corp"));
        assert!(like_match("a_me%", "acme"));
        assert!(!like_match("a_me", "ame"));
        assert!(like_match("%", ""));
        assert!(!like_match("_", ""));
        assert!(like_match("%a%b%c%", "xxaxxbxxcxx"));
        assert!(!like_match("%a%b%c%", "xxcxxbxxaxx"));
        assert!(like_match("", ""));
        assert!(!like_match("", "a"));
    }

    #[test]
    fn escapes() {
        assert!(like_match(r"50\%", "50%"));
        assert!(!like_match(r"50\%", "500"));
        assert!(like_match(r"a\_b", "a_b"));
        assert!(!like_match(r"a\_b", "axb"));
        assert!(like_match(r"a\\b", r"a\b"));
        assert_eq!(plain(r"50\% a\_b c\\d"), r"50% a_b c\d");
    }

    #[test]
    fn unicode_case() {
        assert!(like_match("ÉCOLE%", "école primaire"));
    }
}
