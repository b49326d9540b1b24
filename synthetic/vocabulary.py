"""Swedish words the generator draws from: districts, names, streets, schools, services.

Kept in one place so that the service modules hold behaviour only, and so that
every value stays inside Windows-1252 (two units deliver cp1252 files).
"""

from __future__ import annotations

# The town's eight districts and the share of households in each (uneven on purpose).
DISTRICTS: tuple[str, ...] = ("Centrum", "Norr", "Söder", "Öster", "Väster", "Hamnen", "Skogsby", "Ängby")
DISTRICT_WEIGHTS: tuple[float, ...] = (0.21, 0.15, 0.17, 0.10, 0.12, 0.09, 0.05, 0.11)

# How much more (or less) likely a household is to need economic aid, per district.
DISTRICT_AID_FACTOR: tuple[float, ...] = (1.2, 0.7, 1.6, 0.8, 0.8, 2.5, 0.5, 0.6)

STREETS: dict[str, tuple[str, ...]] = {
    "Centrum": ("Storgatan", "Kyrkogatan", "Drottninggatan", "Torggatan", "Rådhusgatan"),
    "Norr": ("Norra vägen", "Björkvägen", "Granstigen", "Tallvägen", "Norrbackagatan"),
    "Söder": ("Södra Långgatan", "Ekvägen", "Lindvägen", "Almvägen", "Söderleden"),
    "Öster": ("Östra promenaden", "Rosengatan", "Liljegatan", "Tulpanvägen", "Solrosvägen"),
    "Väster": ("Västra esplanaden", "Lönnvägen", "Aspvägen", "Hasselvägen", "Rönnvägen"),
    "Hamnen": ("Hamngatan", "Kajgatan", "Sjömansgatan", "Fiskargatan", "Varvsgatan"),
    "Skogsby": ("Skogsvägen", "Mossvägen", "Ljungvägen", "Blåbärsstigen", "Lingonvägen"),
    "Ängby": ("Ängsvägen", "Prästkragevägen", "Klövervägen", "Blåklintsvägen", "Vallmovägen"),
}

FIRST_NAMES_WOMEN: tuple[str, ...] = (
    "Anna", "Eva", "Maria", "Karin", "Kristina", "Lena", "Sara", "Emma", "Ingrid", "Kerstin",
    "Marie", "Malin", "Elin", "Linnéa", "Ida", "Hanna", "Johanna", "Birgitta", "Margareta", "Elsa",
    "Alice", "Maja", "Astrid", "Wilma", "Ebba", "Agnes", "Saga", "Signe", "Märta", "Åsa",
)  # fmt: skip
FIRST_NAMES_MEN: tuple[str, ...] = (
    "Lars", "Anders", "Johan", "Per", "Erik", "Karl", "Nils", "Mikael", "Jan", "Peter",
    "Hans", "Olof", "Gustav", "Björn", "Mats", "Magnus", "Oskar", "William", "Liam", "Hugo",
    "Elias", "Lucas", "Axel", "Vincent", "Ludvig", "Noah", "Filip", "Åke", "Göran", "Sören",
)  # fmt: skip
LAST_NAMES: tuple[str, ...] = (
    "Andersson", "Johansson", "Karlsson", "Nilsson", "Eriksson", "Larsson", "Olsson", "Persson",
    "Svensson", "Gustafsson", "Pettersson", "Jonsson", "Jansson", "Hansson", "Bengtsson", "Jönsson",
    "Lindberg", "Jakobsson", "Magnusson", "Olofsson", "Lindström", "Lindqvist", "Lindgren", "Berg",
    "Axelsson", "Bergström", "Lundberg", "Lind", "Lundgren", "Lundqvist", "Mattsson", "Berglund",
    "Fredriksson", "Sandberg", "Henriksson", "Forsberg", "Sjöberg", "Wallin", "Engström", "Åberg",
    "Hussein", "Ali", "Mohammed", "Nguyen", "Kowalski", "Virtanen", "Haddad", "Yilmaz",
)  # fmt: skip

# One municipal school per district (same order as DISTRICTS) and two independent schools.
DISTRICT_SCHOOLS: tuple[str, ...] = (
    "Centrumskolan", "Norrskolan", "Söderskolan", "Österskolan",
    "Västerskolan", "Hamnskolan", "Skogsbyskolan", "Ängbyskolan",
)  # fmt: skip
INDEPENDENT_SCHOOLS: tuple[str, ...] = ("Friskolan Lärkan", "Montessoriskolan Ekorren")

NURSING_HOMES: tuple[str, ...] = ("Solgården", "Ekbacken", "Lindhemmet", "Sjöbrisen", "Tallhöjden")

CONTACT_TOPICS: tuple[str, ...] = (
    "Förskola och skola", "Äldreomsorg", "Bygglov", "Avfall och återvinning", "Gator och parkering",
    "Vatten och avlopp", "Ekonomiskt bistånd", "Kultur och fritid", "Felanmälan", "Övrigt",
)  # fmt: skip
CONTACT_TOPIC_WEIGHTS: tuple[float, ...] = (0.18, 0.08, 0.08, 0.14, 0.11, 0.08, 0.05, 0.07, 0.12, 0.09)

E_SERVICES: tuple[str, ...] = (
    "Ansökan om förskoleplats",
    "Ansökan om skolskjuts",
    "Ansökan om kulturskola",
    "Ändring av avfallsabonnemang",
    "Ansökan om färdtjänst",
    "Ansökan om bostadsanpassningsbidrag",
    "Ansökan om parkeringstillstånd för rörelsehindrade",
    "Felanmälan gata och park",
    "Synpunkter och klagomål",
    "Ansökan om borgerlig vigsel",
)
# Which e-services adults in general use, and which the elderly with a safety alarm use.
E_SERVICE_WEIGHTS_ADULTS: tuple[float, ...] = (0.16, 0.08, 0.10, 0.16, 0.04, 0.04, 0.03, 0.18, 0.15, 0.06)
E_SERVICE_WEIGHTS_ALARM: tuple[float, ...] = (0.0, 0.0, 0.0, 0.10, 0.30, 0.25, 0.15, 0.05, 0.15, 0.0)

# Enheter per förvaltning, keyed by the name of a unit that belongs to the förvaltning
# (the förvaltning's own name is taken from that unit's spec). Shares of the förvaltning budget.
ENHETER: dict[str, tuple[tuple[str, float], ...]] = {
    "ekonomi": (
        ("Kommunledningskontoret", 0.30),
        ("Kontaktcenter", 0.20),
        ("Ekonomienheten", 0.15),
        ("HR-enheten", 0.15),
        ("IT-enheten", 0.20),
    ),
    "socialtjanst": (
        ("Försörjningsstöd", 0.40),
        ("Barn och unga", 0.35),
        ("Vuxen och missbruk", 0.20),
        ("Socialförvaltningens stab", 0.05),
    ),
    "skola": (
        ("Grundskola Norr", 0.30),
        ("Grundskola Söder", 0.30),
        ("Förskola", 0.28),
        ("Elevhälsan", 0.12),
    ),
    "vard_omsorg": (
        ("Hemtjänst Norr", 0.20),
        ("Hemtjänst Söder", 0.20),
        ("Särskilt boende", 0.45),
        ("Trygghetslarm och larmcentral", 0.05),
        ("Hälso- och sjukvård", 0.10),
    ),
    "bygg_miljo": (
        ("Bygglovsenheten", 0.25),
        ("Miljö och hälsa", 0.25),
        ("Gata och park", 0.40),
    ),
}
# Share of the municipality's net cost carried by each förvaltning (same keys as ENHETER).
FORVALTNING_BUDGET_SHARE: dict[str, float] = {
    "ekonomi": 0.08,
    "socialtjanst": 0.17,
    "skola": 0.38,
    "vard_omsorg": 0.30,
    "bygg_miljo": 0.07,
}
