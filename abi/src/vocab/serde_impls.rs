//! `serde` for the vocabulary (the `serde` feature): every type travels as
//! its text form, so YAML, JSON and the command line spell it the same way.

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::{
    ClientExitPolicy, CloseMode, Duration, Linger, MacAddr, Outcome, Prefix, Shutdown, TimeWaitRst,
};

struct TextVisitor<T>(PhantomData<T>, &'static str);

impl<T> Visitor<'_> for TextVisitor<T>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.1)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
        s.parse().map_err(E::custom)
    }
}

macro_rules! as_text {
    ($($t:ty => $what:literal),* $(,)?) => {$(
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$t, D::Error> {
                d.deserialize_str(TextVisitor(PhantomData, $what))
            }
        }
    )*};
}

as_text! {
    Duration => "a duration (250ms, 5s, 2m)",
    Linger => "a linger setting (off, on,5s)",
    CloseMode => "a close mode (abort, graceful, linger=5s)",
    Shutdown => "one of receive, send, both",
    Outcome => "a close outcome",
    ClientExitPolicy => "one of linger, graceful, abort",
    TimeWaitRst => "one of close, ignore",
    Prefix => "ADDRESS/PREFIX (198.18.0.1/24, 2001:db8::/32)",
    MacAddr => "a MAC address (02:6c:67:00:00:01)",
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T>(v: T, json: &str)
    where
        T: Serialize + for<'de> Deserialize<'de> + PartialEq + fmt::Debug,
    {
        assert_eq!(serde_json::to_string(&v).unwrap(), json);
        assert_eq!(serde_json::from_str::<T>(json).unwrap(), v);
    }

    #[test]
    fn every_type_travels_as_its_text() {
        round_trip(Duration::from_millis(250), r#""250ms""#);
        round_trip(Linger { on: true, ms: 5000 }, r#""on,5s""#);
        round_trip(CloseMode::Linger { ms: 2000 }, r#""linger=2s""#);
        round_trip(Shutdown::Send, r#""send""#);
        round_trip(Outcome::AbortedLinger, r#""aborted_linger""#);
        round_trip(ClientExitPolicy::Graceful, r#""graceful""#);
        round_trip(TimeWaitRst::Ignore, r#""ignore""#);
        round_trip(
            "2001:db8::/32".parse::<Prefix>().unwrap(),
            r#""2001:db8::/32""#,
        );
        round_trip(MacAddr([2, 0x6c, 0x67, 0, 0, 1]), r#""02:6c:67:00:00:01""#);
    }

    #[test]
    fn bad_text_and_other_shapes_are_errors() {
        let e = serde_json::from_str::<Duration>(r#""5""#).unwrap_err();
        assert!(e.to_string().contains("give a unit"), "{e}");
        let e = serde_json::from_str::<Duration>("5").unwrap_err();
        assert!(e.to_string().contains("a duration"), "{e}");
        assert!(serde_json::from_str::<Prefix>(r#""198.18.0.1/33""#).is_err());
    }
}
