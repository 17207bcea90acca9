//! People and places of `oxifhir synth`: given and family names, streets, cities, phone
//! formats and organization names per locale. Names are varied on purpose (accents, `ß`,
//! `Ł`, apostrophes, hyphens, multi-word family names) so that search and sorting get tested
//! on more than ASCII.

use super::rng::Rng;

/// A place people and organizations come from.
pub struct Locale {
    /// ISO 3166 country code (`Address.country`).
    pub country: &'static str,
    /// BCP 47 language tag (`Patient.communication.language`) and its display.
    pub language: (&'static str, &'static str),
    /// Phone number prefix; eight random digits follow, grouped by pairs.
    pub phone: &'static str,
    /// Female and male given names.
    pub female: &'static [&'static str],
    pub male: &'static [&'static str],
    /// Family names.
    pub family: &'static [&'static str],
    /// Street names; the house number goes before them or after them (`number_first`).
    pub streets: &'static [&'static str],
    pub number_first: bool,
    /// Cities: (name, state or region, postal code pattern where `#` is a random digit).
    pub cities: &'static [(&'static str, &'static str, &'static str)],
    /// Organization name patterns: `{city}` and `{family}` are replaced.
    pub organizations: &'static [&'static str],
}

/// The locales, with [`LOCALE_WEIGHTS`] saying how often each is drawn.
#[rustfmt::skip] // A table laid out by hand: rustfmt would put each name on its own line.
pub const LOCALES: &[Locale] = &[
    Locale {
        country: "US",
        language: ("en-US", "English (United States)"),
        phone: "+1 555 ",
        female: &[
            "Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Susan", "Jessica", "Sarah",
            "Karen", "Nancy", "Zoë", "Renée", "Chloé", "Aaliyah", "Mai", "Mary-Kate", "Ximena",
        ],
        male: &[
            "James", "Robert", "John", "Michael", "David", "William", "Richard", "Joseph", "Thomas",
            "Christopher", "José", "André", "Minh", "Jean-Luc", "DeShawn", "Liam",
        ],
        family: &[
            "Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson",
            "Anderson", "Taylor", "O'Brien", "Nguyễn", "García", "Kim", "Van der Berg",
            "Smith-Jones", "McAllister", "Hernández", "Patel", "Ó Súilleabháin",
        ],
        streets: &[
            "Main Street", "Oak Avenue", "Maple Drive", "Cedar Lane", "Elm Street",
            "Washington Boulevard", "Lakeview Road", "Sunset Terrace",
        ],
        number_first: true,
        cities: &[
            ("Boston", "MA", "021##"),
            ("Springfield", "IL", "627##"),
            ("Portland", "OR", "972##"),
            ("Austin", "TX", "787##"),
            ("Madison", "WI", "537##"),
            ("Santa Fe", "NM", "875##"),
        ],
        organizations: &[
            "{city} General Hospital", "{family} Family Practice", "{city} Community Health Center",
        ],
    },
    Locale {
        country: "FR",
        language: ("fr-FR", "French (France)"),
        phone: "+33 1 ",
        female: &[
            "Françoise", "Hélène", "Aurélie", "Léa", "Chloé", "Élodie", "Margaux", "Inès", "Cécile",
            "Anaïs",
        ],
        male: &[
            "Jérôme", "François", "Benoît", "Loïc", "Théo", "Raphaël", "Gaël", "Noé", "Hugo",
            "Jean-Baptiste",
        ],
        family: &[
            "Lefèvre", "Dubois", "Girard", "Mercier", "Bélanger", "Rousseau", "Garçon", "Lemaître",
            "Fontaine", "de La Tour",
        ],
        streets: &[
            "rue de la Paix", "avenue Jean-Jaurès", "boulevard Haussmann", "rue des Écoles",
            "place du Marché", "chemin des Prés",
        ],
        number_first: true,
        cities: &[
            ("Paris", "Île-de-France", "750##"),
            ("Lyon", "Auvergne-Rhône-Alpes", "690##"),
            ("Nantes", "Pays de la Loire", "440##"),
            ("Saint-Étienne", "Auvergne-Rhône-Alpes", "420##"),
            ("Besançon", "Bourgogne-Franche-Comté", "250##"),
        ],
        organizations: &[
            "Clinique {family}", "Centre de santé de {city}", "Hôpital de {city}",
        ],
    },
    Locale {
        country: "DE",
        language: ("de-DE", "German (Germany)"),
        phone: "+49 30 ",
        female: &[
            "Käthe", "Anna", "Ursula", "Lena", "Jördis", "Gisela", "Mia", "Brünhild",
        ],
        male: &[
            "Jürgen", "Jörg", "Sören", "Lukas", "Günther", "Klaus", "Maximilian", "Björn",
        ],
        family: &[
            "Müller", "Schröder", "Weiß", "Schäfer", "Köhler", "Groß", "Becker", "Hoffmann",
            "von Bülow", "Krüger",
        ],
        streets: &[
            "Hauptstraße", "Schloßallee", "Gartenweg", "Bahnhofstraße", "Lindenstraße",
        ],
        number_first: false,
        cities: &[
            ("München", "Bayern", "80###"),
            ("Köln", "Nordrhein-Westfalen", "50###"),
            ("Düsseldorf", "Nordrhein-Westfalen", "40###"),
            ("Nürnberg", "Bayern", "90###"),
            ("Lübeck", "Schleswig-Holstein", "23###"),
        ],
        organizations: &[
            "Praxis Dr. {family}", "Klinikum {city}", "Medizinisches Zentrum {city}",
        ],
    },
    Locale {
        country: "ES",
        language: ("es-ES", "Spanish (Spain)"),
        phone: "+34 91 ",
        female: &[
            "María", "Lucía", "Sofía", "Inés", "Begoña", "Núria", "Carmen", "Ángela",
        ],
        male: &[
            "José", "Ángel", "Joaquín", "Andrés", "Íñigo", "Raúl", "Martín", "Jesús",
        ],
        family: &[
            "García", "Núñez", "Peña", "Muñoz", "Martínez", "Sánchez", "Ibáñez", "Fernández",
            "Rodríguez López", "de la Fuente",
        ],
        streets: &[
            "Calle Mayor", "Avenida de la Constitución", "Calle del Olivo", "Plaza España",
        ],
        number_first: false,
        cities: &[
            ("Madrid", "Madrid", "280##"),
            ("Málaga", "Andalucía", "290##"),
            ("Córdoba", "Andalucía", "140##"),
            ("A Coruña", "Galicia", "150##"),
            ("Cádiz", "Andalucía", "110##"),
        ],
        organizations: &[
            "Clínica {family}", "Hospital de {city}", "Centro de Salud {city}",
        ],
    },
    Locale {
        country: "NO",
        language: ("nb-NO", "Norwegian Bokmål (Norway)"),
        phone: "+47 ",
        female: &[
            "Åsa", "Ingrid", "Solveig", "Sigrún", "Mari", "Kjersti", "Liv",
        ],
        male: &[
            "Søren", "Bjørn", "Ørjan", "Håkon", "Ståle", "Eirik", "Øystein",
        ],
        family: &[
            "Hansen", "Johansen", "Ødegård", "Bjørnstad", "Sæther", "Løvås", "Håland",
        ],
        streets: &[
            "Storgata", "Kirkeveien", "Fjellveien", "Strandgata", "Øvre Slottsgate",
        ],
        number_first: false,
        cities: &[
            ("Oslo", "Oslo", "0###"),
            ("Bergen", "Vestland", "5###"),
            ("Ålesund", "Møre og Romsdal", "6###"),
            ("Tromsø", "Troms", "9###"),
        ],
        organizations: &["{city} legesenter", "{family} legekontor", "{city} sykehus"],
    },
    Locale {
        country: "PL",
        language: ("pl-PL", "Polish (Poland)"),
        phone: "+48 22 ",
        female: &[
            "Małgorzata", "Agnieszka", "Zofia", "Łucja", "Katarzyna", "Bożena",
        ],
        male: &[
            "Łukasz", "Paweł", "Wojciech", "Jędrzej", "Michał", "Krzysztof",
        ],
        family: &[
            "Kowalski", "Wiśniewski", "Wójcik", "Kamiński", "Łukasiewicz", "Zieliński",
        ],
        streets: &[
            "ulica Długa", "ulica Świętokrzyska", "aleja Róż", "ulica Żelazna",
        ],
        number_first: false,
        cities: &[
            ("Warszawa", "mazowieckie", "0#-###"),
            ("Kraków", "małopolskie", "3#-###"),
            ("Łódź", "łódzkie", "9#-###"),
            ("Gdańsk", "pomorskie", "8#-###"),
        ],
        organizations: &["Przychodnia {city}", "Szpital w {city}", "Gabinet {family}"],
    },
];

/// How often each of [`LOCALES`] is drawn.
pub const LOCALE_WEIGHTS: &[u32] = &[45, 15, 12, 12, 8, 8];

/// A locale, drawn by [`LOCALE_WEIGHTS`].
pub fn locale(rng: &mut Rng) -> &'static Locale {
    &LOCALES[rng.weighted(LOCALE_WEIGHTS)]
}

/// A postal address in `locale`: (line, city, state, postal code).
pub fn address(rng: &mut Rng, locale: &Locale) -> (String, &'static str, &'static str, String) {
    let street = rng.pick(locale.streets);
    let number = rng.range(1, 240);
    let line = if locale.number_first {
        format!("{number} {street}")
    } else {
        format!("{street} {number}")
    };
    let (city, state, pattern) = *rng.pick(locale.cities);
    let postal = digits(rng, pattern);
    (line, city, state, postal)
}

/// A phone number in `locale`.
pub fn phone(rng: &mut Rng, locale: &Locale) -> String {
    digits(rng, &format!("{}## ## ## ##", locale.phone))
}

/// An organization name in `locale`.
pub fn organization_name(rng: &mut Rng, locale: &Locale) -> String {
    let pattern = rng.pick(locale.organizations);
    let (city, _, _) = *rng.pick(locale.cities);
    let family = *rng.pick(locale.family);
    pattern.replace("{city}", city).replace("{family}", family)
}

/// `pattern` with each `#` replaced by a random digit.
fn digits(rng: &mut Rng, pattern: &str) -> String {
    pattern
        .chars()
        .map(|c| match c {
            '#' => char::from(b'0' + rng.below(10) as u8),
            other => other,
        })
        .collect()
}

/// A lowercase ASCII rendering of a name, for e-mail addresses: accents dropped, `ß` → `ss`,
/// spaces and apostrophes removed.
pub fn ascii_slug(name: &str) -> String {
    let mut slug = String::with_capacity(name.len());
    for c in name.chars().flat_map(char::to_lowercase) {
        let replacement = match c {
            'a'..='z' | '0'..='9' | '-' => {
                slug.push(c);
                continue;
            }
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ą' => "a",
            'æ' => "ae",
            'ç' | 'ć' => "c",
            'è' | 'é' | 'ê' | 'ë' | 'ę' | 'ễ' => "e",
            'ì' | 'í' | 'î' | 'ï' => "i",
            'ł' => "l",
            'ñ' | 'ń' => "n",
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' => "o",
            'ß' => "ss",
            'ś' => "s",
            'ù' | 'ú' | 'û' | 'ü' => "u",
            'ý' | 'ÿ' => "y",
            'ź' | 'ż' => "z",
            _ => "",
        };
        slug.push_str(replacement);
    }
    slug
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_ascii() {
        assert_eq!(ascii_slug("Nguyễn"), "nguyen");
        assert_eq!(ascii_slug("O'Brien"), "obrien");
        assert_eq!(ascii_slug("Weiß"), "weiss");
        assert_eq!(ascii_slug("Łukasz"), "lukasz");
        assert_eq!(ascii_slug("de La Tour"), "delatour");
        for locale in LOCALES {
            for name in locale.female.iter().chain(locale.male).chain(locale.family) {
                let slug = ascii_slug(name);
                assert!(!slug.is_empty() && slug.is_ascii(), "{name} → {slug}");
            }
        }
        assert_eq!(LOCALES.len(), LOCALE_WEIGHTS.len());
    }
}
