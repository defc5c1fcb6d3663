//! What the tree-free JSON scans (`event::ident`, `sources::azure::listing`) share: visitors that give
//! one answer for every scalar, since they care only whether a value is an object or an array.

/// Implements a `serde::de::Visitor`'s `visit_bool`, `visit_i64`, `visit_u64`, `visit_f64` and
/// `visit_unit` as `Ok($value)` (strings are left to the visitor: some of them keep strings).
macro_rules! scalars_give {
    ($value:expr) => {
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok($value)
        }
    };
}
pub(crate) use scalars_give;
