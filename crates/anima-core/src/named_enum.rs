//! String-backed enums with stable storage names, shared by every domain
//! module: one spelling in rows, on the CLI, in event payloads (serde) and
//! in errors that list the choices.

/// Declares an enum whose variants have stable text names: `as_str`,
/// `FromStr` (an unknown name is `INVALID_FIELD` listing the choices),
/// `Display`, `ALL`, and serde under the same names.
macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ::serde::Serialize, ::serde::Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The stable name stored in rows and shown by the CLI.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::DomainError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                match text {
                    $($text => Ok($name::$variant),)*
                    _ => Err($crate::DomainError::invalid_argument(
                        $crate::error::reason::INVALID_FIELD,
                        format!(
                            concat!("unknown ", $what, " {:?}; one of: {}"),
                            text,
                            [$($text),*].join(", ")
                        ),
                    )),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
