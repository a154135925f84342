"""The seeded demo data set: ~600 leads and ~7,000 events over 90 days, as signed webhook requests.

``generate`` builds a varied population (buyers, researchers, readers, junk, students, competitors,
do-not-contact, bounces) in HubSpot (~55%), Salesforce (~30%) and web-only (~15%), and returns phase 1
(CRM record webhooks and website activity through ``/webhooks/events``), a builder for phase 2
(sales works the hand-offs: status changes come back through the CRM webhooks) and one for phase 3
(sales turns accepted leads into deals, some won, some lost: HubSpot deal notifications, Salesforce
lead conversions and opportunity outbound messages). Nothing here touches the network; only the
builders read the database.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.sax.saxutils import escape

import phonenumbers

from connectors.base import secret_list
from connectors.hubspot.webhook import SIGNATURE_V3_HEADER, TIMESTAMP_HEADER, hubspot_signature_v3
from connectors.salesforce.webhook import id18
from integration.services import Services
from integration.web.intake import SIGNATURE_HEADER, sign

WEB_PATH, HUBSPOT_PATH, SALESFORCE_PATH = "/webhooks/events", "/webhooks/hubspot", "/webhooks/salesforce/{token}"
SITE = "https://www.routecover.example"
WEB_BATCH, CRM_BATCH, DAYS = 490, 100, 90  # web: room for one redelivery under the intake's 500 per request
PORTAL_ID, APP_ID, CREATION_SUB, CHANGE_SUB = 48807704, 16111050, 3923621, 3923622
DEAL_SUB, DEAL_ASSOCIATION_SUB, DEAL_CHANGE_SUB = 3923630, 3923631, 3923632
SF_NS, SF_TIME = "urn:sobject.enterprise.soap.sforce.com", "%Y-%m-%dT%H:%M:%S.000Z"  # all times are UTC

# --- who they are --------------------------------------------------------------------------------
NAMES = {  # name group -> (first names, last names); "_" stands for a space
    "de": ("Anna Lukas Julia Felix Sarah Jonas Laura Maximilian Lena Tobias Katharina Florian Miriam Stefan "
           "Sabine Markus Claudia Jan", "Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Hoffmann "
           "Schäfer Koch Richter Klein Wolf Neumann Schwarz Zimmermann Krüger Hartmann Lange"),
    "en": ("Oliver Amelia Harry Isla George Emily Jack Sophie Thomas Charlotte James Grace Liam Aoife Sean "
           "Niamh Michael Jennifer David Jessica Daniel Megan Kevin Lauren Ryan Nicole", "Smith Jones Taylor "
           "Brown Williams Wilson Evans Roberts Walsh Murphy Kelly O'Brien Byrne Clarke Hughes Johnson Miller "
           "Davis Garcia Martinez Anderson Thompson Harris Lewis Walker Tremblay"),
    "nl": ("Daan Sanne Lars Emma Bram Lotte Sem Fleur Thijs Anouk",
           "de_Jong Jansen de_Vries Bakker Visser Smit Peeters Maes Janssens Mertens"),
    "fr": ("Camille Lucas Chloé Hugo Léa Louis Manon Julien", "Martin Bernard Dubois Robert Richard Petit Durand"),
    "es": ("Lucía Pablo Carmen Javier", "García López Martínez Sánchez"),
    "in": ("Priya Rahul Ananya Arjun", "Sharma Patel Iyer Reddy"),
    "br": ("Ana João Beatriz Pedro", "Silva Santos Oliveira Souza"),
    "pl": ("Katarzyna Piotr Agnieszka Tomasz", "Kowalski Nowak Wiśniewski Wójcik"),
}
COUNTRIES = {  # ISO-2 -> (name as typed in forms, name group, phone templates: "#" is a random digit)
    "DE": ("Germany", "de", ["+49 30 ########", "+49 89 ########", "+49 40 #######", "+49 151 ########"]),
    "AT": ("Austria", "de", ["+43 1 #######", "+43 664 #######"]),
    "CH": ("Switzerland", "de", ["+41 44 ### ## ##", "+41 79 ### ## ##"]),
    "GB": ("United Kingdom", "en", ["+44 20 7### ####", "+44 161 ### ####", "+44 7### ######"]),
    "IE": ("Ireland", "en", ["+353 1 ### ####", "+353 87 ### ####"]),
    "US": ("United States", "en", ["+1 415 ### ####", "+1 312 ### ####", "+1 646 ### ####"]),
    "CA": ("Canada", "en", ["+1 416 ### ####", "+1 604 ### ####"]),
    "NL": ("Netherlands", "nl", ["+31 20 ### ####", "+31 6 ########"]),
    "BE": ("Belgium", "nl", ["+32 2 ### ## ##", "+32 475 ## ## ##"]),
    "FR": ("France", "fr", ["+33 1 ## ## ## ##", "+33 6 ## ## ## ##"]),
    "ES": ("Spain", "es", ["+34 91 ### ## ##"]), "IN": ("India", "in", ["+91 22 #### ####"]),
    "BR": ("Brazil", "br", ["+55 11 #### ####"]), "PL": ("Poland", "pl", ["+48 22 ### ## ##"]),
}
_COMPANIES = """name|own domain|industry|employees|country
Nordfracht Logistik GmbH|nordfracht.de|Logistics|420|DE; Hansekontor Handels AG|hansekontor.de|Wholesale|2600|DE
Rheinland Spedition GmbH & Co. KG|rheinland-spedition.de|Transportation|1300|DE
Brenner Maschinenbau GmbH|brenner-maschinenbau.de|Manufacturing|780|DE
Kessler Beratung|kessler-beratung.de|Consulting|6|DE; Kaufhaus Lindner KG|kaufhaus-lindner.de|Retail|310|DE
Fahrradfuchs Online GmbH|fahrradfuchs.de|E-commerce|95|DE; Quellwerk Software GmbH|quellwerk.de|Software|60|DE
Klinikverbund Ostalb|klinikverbund-ostalb.de|Healthcare|3400|DE; Alpentrans Logistik GmbH|alpentrans.at|Logistics|530|AT
Donau Handel AG|donauhandel.at|Wholesale|210|AT; Gotthard Cargo AG|gotthardcargo.ch|Transportation|880|CH
Limmat Präzision AG|limmat-praezision.ch|Manufacturing|340|CH
Harbourline Freight Ltd|harbourline.co.uk|Logistics|640|GB; Pennine Retail Group plc|penninegroup.co.uk|Retail|4200|GB
Thameside Components Ltd|thamesidecomponents.co.uk|Manufacturing|120|GB
Brightwell Analytics Ltd|brightwell-analytics.co.uk|Software|45|GB; Fenwick & Hale LLP|fenwickhale.co.uk|Legal|140|GB
Liffey Distribution Ltd|liffeydistribution.ie|Wholesale|260|IE
Bayside Freight Inc.|baysidefreight.com|Transportation|1900|US
Redwood Outfitters Inc.|redwoodoutfitters.com|E-commerce|230|US
Mesa Robotics Corp.|mesarobotics.com|Manufacturing|12000|US
Lakeshore Industrial Supply|lakeshoreindustrial.com|Wholesale|3100|US
Summit Health Partners|summithealthpartners.com|Healthcare|800|US; Cobalt Ridge Capital|cobaltridge.com|Finance|75|US
Granite Peak Consulting LLC|granitepeakconsulting.com|Consulting|8|US
Maple Route Logistics Inc.|mapleroute.ca|Logistics|370|CA; Northern Grocers Co-op|northerngrocers.ca|Retail|1100|CA
Van Dijk Transport B.V.|vandijktransport.nl|Transportation|480|NL; Polder Fresh B.V.|polderfresh.nl|Wholesale|190|NL
Schelde Logistics NV|scheldelogistics.be|Logistics|720|BE; Studio Mertens|studiomertens.be|Marketing|4|BE
Transports Garnier SAS|transports-garnier.fr|Transportation|560|FR
Maison Lefèvre Distribution|lefevre-distribution.fr|Retail|2300|FR
Wisła Cargo Sp. z o.o.|wislacargo.pl|Logistics|280|PL; Logística Ibérica S.L.|logisticaiberica.es|Logistics|350|ES
Sahyadri Freight Pvt Ltd|sahyadrifreight.in|Logistics|900|IN
Rota Sul Transportes Ltda|rotasul.com.br|Transportation|640|BR"""
COMPANIES = [(n, d, i, int(e), c) for n, d, i, e, c in
             (row.split("|") for row in re.split(r"; |\n", _COMPANIES)[1:])]
CORE = {"Logistics", "Transportation", "Manufacturing", "Retail", "Wholesale", "E-commerce"}
CORE_COUNTRIES = {"DE", "AT", "CH", "NL", "BE", "GB", "IE", "FR", "US", "CA"}
BUYER_COMPANIES = [c for c in COMPANIES if c[2] in CORE and 50 <= c[3] <= 5000 and c[4] in CORE_COUNTRIES]
TITLES = {
    "lead": ["Head of Logistics", "Director of Operations", "VP Supply Chain", "COO", "Founder & CEO",
             "Geschäftsführer", "Head of Transport", "Director, Fulfilment"],
    "manager": ["Logistics Manager", "Fleet Manager", "Transport Manager", "Operations Manager",
                "Team Lead Dispatch", "Leiter Disposition", "Supply Chain Manager", "Warehouse Manager"],
    "staff": ["Dispatcher", "Logistics Coordinator", "Supply Chain Analyst", "Buyer", "Marketing Specialist",
              "Software Engineer", "Customer Service Agent", "Disponentin"],
}
LEVELS = {"buyer": [55, 45, 0], "light": [5, 20, 75]}  # lead / manager / staff titles by profile (else 15/35/50)
PHONE_SHARE = {"buyer": 0.95, "light": 0.4}  # who gives a phone number (else 0.7)
FREE_MAIL = ["gmail.com", "web.de", "gmx.de", "outlook.com", "yahoo.com", "hotmail.co.uk", "t-online.de"]
DISPOSABLE = ["mailinator.com", "guerrillamail.com", "10minutemail.com", "trashmail.com", "sharklasers.com"]
UNIVERSITIES = [  # caught by the domain (.edu, ac.uk ...) or, where the domain says nothing, by the job title
    ("Stanford University", "stanford.edu", "", "US"), ("University College London", "ucl.ac.uk", "", "GB"),
    ("University of Manchester", "student.manchester.ac.uk", "MSc Student Supply Chain", "GB"),
    ("TU München", "tum.de", "Werkstudent Logistik", "DE"), ("Georgia Tech", "gatech.edu", "PhD Candidate", "US"),
    ("WU Wien", "s.wu.ac.at", "Student", "AT"), ("University of Melbourne", "student.unimelb.edu.au", "Intern", "AU")]
COMPETITORS = [("RivalRoute", "rivalroute.example"), ("FleetCompetitor Inc.", "fleetcompetitor.example")]

# --- what they do: asset ids and URL patterns of rules/leadloop.yaml -------------------------------
PAGES = {k: v.split() for k, v in {
    "pricing-page": "/pricing /pricing/enterprise", "coverage-map": "/coverage /coverage/europe /coverage/us",
    "roi-calculator": "/roi-calculator", "case-studies": "/customers/nordfracht /customers/harbourline",
    "buyers-guide": "/guide/why-visibility /guide/requirements /guide/integration-checklist /guide/total-cost "
                    "/guide/vendor-comparison /guide/rollout-plan",
    "integration-docs": "/docs/integrations /docs/integrations/sap /docs/integrations/shopify",
    "blog": "/blog/late-deliveries-cost /blog/ev-fleet-range /blog/peak-season-playbook /blog/eta-accuracy",
    "careers": "/careers /careers/account-executive-berlin /jobs/backend-engineer",
    "general": "/ /product /product/live-eta /about",  # pages no asset claims
}.items()}
DOWNLOADS = {"coverage-map": "/coverage/download/coverage-map-eu.pdf", "roi-calculator": "/roi-calculator/report",
             "buyers-guide": "/guide/download/buyers-guide.pdf", "blog": "/blog/ebook-last-mile.pdf",
             "newsletter": "/newsletter/2025-q2.pdf", "webinar-recording": "/webinars/live-eta/recording"}
FORMS = {"trial": "/trial", "event-registration": "/events/logimat", "coverage-map": "/coverage",
         "demo-request": "/demo", "contact": "/contact", "guide-download": "/guide", "newsletter": "/blog",
         "whitepaper": "/resources"}
CAMPAIGNS = ["nurture-welcome", "nurture-coverage", "webinar-invite-june", "newsletter-2025-05", "product-update-q2"]
EXTRAS = {  # kind -> property choices
    "event_attended": [{"event": "LogiMAT 2025, Stuttgart"}, {"event": "Fleet Visibility Roadshow, London"}],
    "trial_signup": [{"plan": "14-day trial", "url": SITE + "/trial"}],
    "chat_intent": [{"topic": "coverage in Poland"}, {"topic": "SAP integration"}, {"topic": "price for 200 trucks"}],
    "contact_request": [{"url": SITE + "/contact", "message": "Please call me about a rollout for our fleet."}],
    "unsubscribe": [{"campaign": "newsletter-2025-05"}], "bounce": [{"reason": "550 mailbox unavailable"}],
    "do_not_contact": [{"reason": "asked on the phone not to be contacted again"}],
}
#: Journey steps are written "kind[:pool] fewest-most"; pool: a PAGES/DOWNLOADS asset or a FORMS name.
KINDS = {"view": "page_view", "get": "content_download", "form": "form_submit", "open": "email_open",
         "click": "email_click", "chat": "chat_intent", "trial": "trial_signup", "event": "event_attended",
         "contact": "contact_request", "dnc": "do_not_contact", "unsub": "unsubscribe", "bounce": "bounce"}
_MAIL = " open 1-6 click 0-2"


@dataclass(frozen=True)
class Persona:
    weight: int
    profile: str  # buyer | prospect | light | junk | freemail | student | competitor
    days: int  # how long the journey lasts at most
    entry: str  # the form that created the lead (first)
    finale: str  # the step that ends the journey (last), "" for none
    steps: str  # what happens in between


PERSONAS = {
    "trial": Persona(3, "buyer", 21, "trial", "trial 1-1", "view:pricing-page 1-3 view:coverage-map 0-2 "
                     "view:buyers-guide 0-3 view:integration-docs 0-2 chat 0-1 view:general 1-3" + _MAIL),
    "event": Persona(2, "buyer", 30, "event-registration", "event 1-1",
                     "view:pricing-page 0-2 view:case-studies 1-3 view:general 1-2" + _MAIL),
    "hot_content": Persona(2, "buyer", 25, "coverage-map", "get:coverage-map 1-1", "view:pricing-page 1-3 "
                           "view:coverage-map 1-3 view:roi-calculator 0-2 get:roi-calculator 0-1 "
                           "view:integration-docs 0-3 view:buyers-guide 0-3 chat 0-1" + _MAIL),
    "contact": Persona(2, "prospect", 30, "contact", "contact 1-1", "view:buyers-guide 1-3 view:case-studies 0-2 "
                       "view:pricing-page 0-1 view:general 1-3" + _MAIL),
    "demo": Persona(2, "prospect", 20, "guide-download", "form:demo-request 1-1",
                    "view:general 1-3 view:case-studies 0-2" + _MAIL),
    "research": Persona(4, "prospect", 40, "guide-download", "get:buyers-guide 1-1", "view:buyers-guide 1-4 "
                        "view:case-studies 0-2 view:blog 1-4 get:webinar-recording 0-1 view:integration-docs 0-1 "
                        "open 2-8 click 0-3"),
    "reader": Persona(25, "light", 60, "newsletter", "", "view:blog 2-8 view:general 0-3 get:blog 0-1 "
                      "view:buyers-guide 0-1 open 3-14 click 0-3"),
    "cold": Persona(23, "light", 5, "whitepaper", "get:newsletter 1-1", "open 0-2 view:blog 0-1"),
    "job_seeker": Persona(3, "light", 10, "newsletter", "", "view:careers 1-3 view:general 1-2 view:blog 0-2"),
    "junk": Persona(7, "junk", 1, "whitepaper", "", "get:buyers-guide 0-1 contact 0-1 view:general 0-2"),
    "freemail": Persona(6, "freemail", 20, "trial", "", "trial 0-1 view:pricing-page 0-2 view:blog 1-4" + _MAIL),
    "student": Persona(5, "student", 30, "guide-download", "", "get:buyers-guide 1-1 view:buyers-guide 2-5 "
                       "view:blog 2-6 trial 0-1 view:careers 0-1"),
    "competitor": Persona(3, "competitor", 30, "coverage-map", "get:coverage-map 1-1", "view:pricing-page 2-4 "
                          "view:coverage-map 1-3 view:roi-calculator 0-1 view:integration-docs 1-3"),
    "do_not_contact": Persona(4, "prospect", 30, "guide-download", "dnc 1-1",
                              "view:buyers-guide 1-3 view:pricing-page 0-2 unsub 0-1 open 1-4"),
    "bounce": Persona(3, "prospect", 20, "whitepaper", "bounce 1-1", "view:blog 0-3 view:general 0-2 bounce 0-1"),
}
HOT_PERSONAS = ("trial", "event", "hot_content", "contact", "demo", "research")  # some qualify in the last days
CRM_SHARES = (("hubspot", 55), ("salesforce", 30), (None, 15))
#: CRM status values that the `feedback:` section of rules/leadloop.yaml reads as each answer. Salesforce
#: has no value meaning bad data there, so those hand-offs get no answer.
FEEDBACK = {"hubspot": {"accepted": ["IN_PROGRESS", "ATTEMPTED_TO_CONTACT", "CONNECTED"],
                        "not_ready": ["BAD_TIMING"], "bad_data": ["UNQUALIFIED"]},
            "salesforce": {"accepted": ["Working - Contacted"], "not_ready": ["Closed - Not Converted"]}}
#: Phase 3: the share of accepted hand-offs that become deals, how the deals end, what they are worth.
DEAL_SHARE = 0.8
DEAL_ENDS = (("won", 45), ("lost", 30), ("open", 25))
DEAL_AMOUNTS = (4_800, 9_600, 12_000, 18_000, 24_000, 36_000, 48_000, 72_000)
CURRENCIES = {"GB": "GBP", "US": "USD", "CA": "CAD"}  # by the lead's country; else EUR
#: Stage ids of HubSpot's default pipeline (the rules' ``outcomes`` table reads them: no stage
#: flags come with a notification, and the demo has no HubSpot API) and Salesforce's stage names.
DEAL_STAGES = {"hubspot": {"open": "qualifiedtobuy", "won": "closedwon", "lost": "closedlost"},
               "salesforce": {"open": "Qualification", "won": "Closed Won", "lost": "Closed Lost"}}
SF_FIELDS = {"first_name": "FirstName", "last_name": "LastName", "company": "Company", "job_title": "Title",
             "phone": "Phone", "country": "Country", "industry": "Industry", "employees": "NumberOfEmployees",
             "website": "Website"}
LEAD_SOURCES = {"event-registration": "Trade Show", "trial": "Free Trial", "newsletter": "Newsletter"}
_ASCII = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "é": "e", "á": "a", "í": "i", "ó": "o",
                        "ã": "a", "ł": "l", "ś": "s", "ń": "n", "'": "", " ": ""})
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


# --- requests ----------------------------------------------------------------------------------------

def _render_web(items: list, env: Mapping[str, str]) -> tuple[bytes, dict[str, str], str]:
    body = json.dumps(items, ensure_ascii=False, separators=(",", ":")).encode()
    signature = sign(body, secret_list(env["LEADLOOP_EVENTS_SECRETS"])[0])
    return body, {"Content-Type": "application/json", SIGNATURE_HEADER: signature}, WEB_PATH


def _render_hubspot(items: list, env: Mapping[str, str]) -> tuple[bytes, dict[str, str], str]:
    body, stamp = json.dumps(items, separators=(",", ":")).encode(), str(int(time.time() * 1000))
    secret = secret_list(env["HUBSPOT_CLIENT_SECRETS"])[0]
    signature = hubspot_signature_v3(secret, "POST", env["PUBLIC_BASE_URL"] + HUBSPOT_PATH, body, stamp)
    headers = {"Content-Type": "application/json", SIGNATURE_V3_HEADER: signature, TIMESTAMP_HEADER: stamp}
    return body, headers, HUBSPOT_PATH


def _render_salesforce(items: list, env: Mapping[str, str]) -> tuple[bytes, dict[str, str], str]:
    # The Outbound Message WSDL shape, as in tests/fixtures/salesforce/outbound_message_lead.xml.
    org = env["SALESFORCE_ORG_ID"]
    api = f"https://routecover.my.salesforce.com/services/Soap/%s/62.0/{org[:15]}"
    notes = "".join(
        f'<Notification><Id>{n["id"]}</Id><sObject xsi:type="sf:{n.get("type", "Lead")}" xmlns:sf="{SF_NS}">'
        + "".join(f"<sf:{k}>{escape(str(v))}</sf:{k}>" for k, v in n["sobject"].items()) + "</sObject></Notification>"
        for n in items)
    body = ('<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap'
            '/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-'
            'instance"><soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
            f'<OrganizationId>{escape(org)}</OrganizationId><ActionId>04k5g000000LdLpAAK</ActionId>'
            f'<SessionId xsi:nil="true"/><EnterpriseUrl>{api % "c"}</EnterpriseUrl><PartnerUrl>{api % "u"}</PartnerUrl>'
            f"{notes}</notifications></soapenv:Body></soapenv:Envelope>")
    path = SALESFORCE_PATH.format(token=secret_list(env["SALESFORCE_WEBHOOK_TOKENS"])[0])
    return body.encode(), {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'}, path


_RENDERERS = {WEB_PATH: _render_web, HUBSPOT_PATH: _render_hubspot, SALESFORCE_PATH: _render_salesforce}


@dataclass
class OutgoingRequest:
    """One webhook request the demo posts: the endpoint and the events it carries."""

    path: str  # WEB_PATH, HUBSPOT_PATH or SALESFORCE_PATH (with its {token} placeholder)
    items: list

    def render(self, env: Mapping[str, str]) -> tuple[bytes, dict[str, str], str]:
        """Return (body, headers, path) signed with the secrets in env, at the current time."""
        return _RENDERERS[self.path](self.items, env)


@dataclass
class DemoLead:
    """One generated lead: who it is (canonical fields) and what it did (web intake events)."""

    persona: str
    crm: str | None
    crm_id: str | None
    email: str
    fields: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)
    sobject: dict[str, Any] | None = None  # the Salesforce Lead as sent


@dataclass
class Dataset:
    lead_count: int
    event_count: int  # distinct events; redeliveries come on top
    phase1: list[OutgoingRequest]
    phase2_builder: Callable[[Any], list[OutgoingRequest]] | None
    leads: list[DemoLead] = field(default_factory=list)
    redeliveries: int = 0
    #: Phase 3: deals for the leads sales accepted (reads the database).
    deals_builder: Callable[[Any], list[OutgoingRequest]] | None = None


# --- leads -------------------------------------------------------------------------------------------

def _phone(rng: random.Random, country: str) -> str:
    for _ in range(100):
        number = re.sub("#", lambda _: str(rng.randrange(10)), rng.choice(COUNTRIES[country][2]))
        parsed = phonenumbers.parse(number)
        if phonenumbers.is_valid_number(parsed):
            # Some people type the national form ("030 ..."); the rules read it with their country.
            national = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
            return national if rng.random() < 0.2 else number
    raise RuntimeError(f"no valid phone number from the {country} templates")


def _person(rng: random.Random, country: str) -> tuple[str, str, str]:
    firsts, lasts = NAMES[COUNTRIES[country][1]]
    first, last = rng.choice(firsts.split()), rng.choice(lasts.split()).replace("_", " ")
    f, la = first.lower().translate(_ASCII), last.lower().translate(_ASCII)
    return first, last, rng.choice([f"{f}.{la}", f"{f}.{la}", f"{f[0]}.{la}", f"{f[0]}{la}", f"{f}{la}"])


def _profile(rng: random.Random, kind: str) -> tuple[str, dict[str, Any]]:
    """Return (email, canonical fields) of a lead of this profile kind."""
    name, domain, industry, employees, country = rng.choice(BUYER_COMPANIES if kind == "buyer" else COMPANIES)
    first, last, local = _person(rng, country)
    level = rng.choices(["lead", "manager", "staff"], LEVELS.get(kind, [15, 35, 50]))[0]
    fields: dict[str, Any] = {"first_name": first, "last_name": last, "company": name, "country": country,
                              "industry": industry, "employees": employees, "website": f"https://www.{domain}",
                              "job_title": rng.choice(TITLES[level])}
    if kind == "light" and rng.random() < 0.5:
        fields = {"first_name": first}  # a newsletter form asks for little
    elif kind == "freemail":
        domain = rng.choice(FREE_MAIL)
        fields.update(company=rng.choice([f"{last} Transporte", f"{last} Logistics", name]),
                      employees=rng.randint(1, 40), job_title=rng.choice(["Owner", "Freelance dispatcher", "Founder"]))
    elif kind == "junk":
        domain = rng.choice(DISPOSABLE + ["gmail.com", "yahoo.com"])
        local = rng.choice(["test", "info", "john.doe"]) if rng.random() < 0.25 else \
            "".join(rng.choices("sdfghjklqwrtzxcvbnm", k=rng.randint(5, 8))) + str(rng.randint(10, 9999))
        fields = {"first_name": rng.choice(["asdf", "test", "x", "Mickey"]), "last_name": rng.choice(["asdf", "Mouse"]),
                  "company": rng.choice(["test", "-", "none"]), "phone": rng.choice(["123456", "0000", "+49 1"])}
    elif kind == "student":
        uni, domain, title, country = rng.choice(UNIVERSITIES)
        fields.update(company=uni, job_title=title or None, country=country, industry="Education", employees=None,
                      website=None)
    elif kind == "competitor":
        company, domain = rng.choice(COMPETITORS)
        fields.update(company=company, website=f"https://www.{domain}", industry="Software", employees=140,
                      job_title=rng.choice(["Product Manager", "Competitive Intelligence Analyst", "Head of Sales"]))
        domain = "gmail.com" if rng.random() < 0.3 else domain  # then caught by the website
    if kind != "junk" and fields.get("country") in COUNTRIES and rng.random() < PHONE_SHARE.get(kind, 0.7):
        fields["phone"] = _phone(rng, fields["country"])
    if fields.get("country") in COUNTRIES and rng.random() < 0.8:
        fields["country"] = COUNTRIES[fields["country"]][0]
    if kind == "prospect" and rng.random() < 0.2:
        fields.pop(rng.choice(["industry", "employees", "job_title"]), None)
    return f"{local}@{domain}", {k: v for k, v in fields.items() if v is not None}


def _properties(rng: random.Random, kind: str, pool: str) -> dict[str, Any]:
    if kind == "page_view":
        return {"url": SITE + rng.choice(PAGES[pool])}
    if kind == "content_download":
        return {"asset": pool, "url": SITE + DOWNLOADS[pool]}
    if kind == "form_submit":
        return {"form": pool, "url": SITE + FORMS[pool]}
    if kind in ("email_open", "email_click"):
        click = {"url": SITE + rng.choice(PAGES["blog"])} if kind == "email_click" else {}
        return {"campaign": rng.choice(CAMPAIGNS), **click}
    return dict(rng.choice(EXTRAS[kind]))


def _steps(rng: random.Random, text: str) -> list[tuple[str, str]]:
    return [(KINDS[kind], pool) for kind, pool, low, high in re.findall(r"(\w+):?([\w-]*) (\d+)-(\d+)", text)
            for _ in range(rng.randint(int(low), int(high)))]


def _journey(rng: random.Random, persona: Persona, now: datetime, recent: bool) -> list[tuple[datetime, str, str]]:
    """Return (when, kind, pool) of one lead's activity, the entry form first, the finale last."""
    if recent:  # qualifies in the last days, so decay cannot hide it
        start, days = now - timedelta(days=rng.uniform(0.2, 3)), min(persona.days, 2)
    else:
        start, days = now - timedelta(days=rng.uniform(0.5, DAYS)), persona.days
    end = min(start + timedelta(days=days * rng.uniform(0.3, 1)), now - timedelta(minutes=10))
    middle = sorted((start + (end - start) * rng.uniform(0.01, 0.99), kind, pool)
                    for kind, pool in _steps(rng, persona.steps))
    return [(start, "form_submit", persona.entry), *middle, *((end, *step) for step in _steps(rng, persona.finale))]


def _lead(rng: random.Random, number: int, name: str, crm: str | None, seed: int, now: datetime,
          used: set[str]) -> tuple[DemoLead, tuple[str, str, dict[str, Any]] | None]:
    """Return one lead and its CRM record as (time, path, item): a HubSpot event or Salesforce notification."""
    persona = PERSONAS[name]
    email, fields = _profile(rng, persona.profile)
    while email in used:
        email, fields = _profile(rng, persona.profile)
    used.add(email)
    crm_id = (str(rng.randrange(10**10, 10**12)) if crm == "hubspot"
              else id18("00Q" + "".join(rng.choices(_ALNUM, k=12))) if crm == "salesforce" else None)
    journey = _journey(rng, persona, now, name in HOT_PERSONAS and rng.random() < 0.12)
    lead = DemoLead(name, crm, crm_id, email, fields)
    for index, (at, kind, pool) in enumerate(journey):
        event = {"id": f"demo-{seed}-{number:05d}-{index:03d}", "type": kind,
                 "occurred_at": at.isoformat(timespec="seconds"), "email": email}
        if crm:
            event |= {"crm": crm, "crm_id": crm_id}
        event["properties"] = _properties(rng, kind, pool)
        if index == 0 and crm != "salesforce":  # Salesforce leads' fields come with the record
            event["properties"]["fields"] = {"email": email, **fields}
        lead.events.append(event)
    created = journey[0][0] + timedelta(seconds=rng.randint(2, 40))
    if crm == "hubspot":
        source = rng.choices(["FORM", "CRM_UI", "IMPORT"], [8, 1, 1])[0]
        source_id = f"{rng.getrandbits(128):032x}" if source == "FORM" else f"userId:{rng.randrange(10**7, 10**8)}"
        return lead, (created.isoformat(timespec="seconds"), HUBSPOT_PATH, {
            "eventId": rng.randrange(10**8, 10**10), "subscriptionId": CREATION_SUB, "portalId": PORTAL_ID,
            "appId": APP_ID, "occurredAt": int(created.timestamp() * 1000), "subscriptionType": "contact.creation",
            "attemptNumber": 0, "objectId": int(crm_id), "changeFlag": "CREATED", "changeSource": source,
            "sourceId": source_id})
    if crm == "salesforce":
        # LastName and Company are required on a Lead: web-to-lead fills them with "[not provided]".
        lead.sobject = {"Id": crm_id, "LastName": "[not provided]", "Company": "[not provided]",
                        **{SF_FIELDS[k]: v for k, v in fields.items() if k in SF_FIELDS}, "Email": email,
                        "LeadSource": LEAD_SOURCES.get(persona.entry, "Web"), "Status": "Open - Not Contacted",
                        "LastModifiedDate": created.strftime(SF_TIME)}
        notification = {"id": "04l" + "".join(rng.choices(_ALNUM, k=15)), "sobject": lead.sobject}
        return lead, (created.isoformat(timespec="seconds"), SALESFORCE_PATH, notification)
    return lead, None


# --- the data set ------------------------------------------------------------------------------------

def _chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _phase1(rng: random.Random, web: list[dict], records: list[tuple[str, str, dict]]) -> tuple[list, int]:
    """Interleave CRM records and web activity in rough time order, with some disorder and redeliveries."""
    web.sort(key=lambda e: e["occurred_at"])
    for _ in range(len(web) // 70):  # a few events arrive late, a few early
        i = rng.randrange(max(1, len(web) - 600))
        j = min(len(web) - 1, i + rng.randint(50, 600))
        web[i], web[j] = web[j], web[i]
    batches = _chunks(web, WEB_BATCH)
    for b in sorted(rng.sample(range(1, len(batches)), min(8, len(batches) - 1))):
        batches[b].append(rng.choice(batches[b - 1]))  # the sender retried after a timeout: same id, later
    requests, pending = [], sorted(records, key=lambda r: r[0])
    for batch in batches:
        until = max(e["occurred_at"] for e in batch)
        due, pending = [r for r in pending if r[0] <= until], [r for r in pending if r[0] > until]
        for path in (HUBSPOT_PATH, SALESFORCE_PATH):
            requests += [OutgoingRequest(path, c) for c in _chunks([r[2] for r in due if r[1] == path], CRM_BATCH)]
        requests.append(OutgoingRequest(WEB_PATH, batch))
    # HubSpot retries with a higher attemptNumber; Salesforce resends the same notification.
    retries = {HUBSPOT_PATH: [], SALESFORCE_PATH: []}
    for _, path, item in rng.sample(records, min(5, len(records))):
        retries[path].append(item | {"attemptNumber": 1} if path == HUBSPOT_PATH else item)
    requests += [OutgoingRequest(path, items) for path, items in retries.items() if items]
    return requests, min(8, len(batches) - 1) + min(5, len(records))


def feedback_requests(handoffs: list[tuple[str, str]], leads: Mapping[tuple[str, str], DemoLead], seed: int,
                      at: datetime, handed_off: Mapping[tuple[str, str], datetime] | None = None
                      ) -> list[OutgoingRequest]:
    """Return the CRM status changes with which sales answers the hand-offs ``(crm, crm_id)``.

    About half are accepted, a quarter "not ready", a tenth bad data; the rest get no answer (they
    will miss their SLA). Salesforce leads come back as their full record with the new ``Status``.
    Each answer happens at ``at``, or, for a lead in ``handed_off`` (its hand-off's business time),
    an hour to three days after its hand-off (never after ``at``): the funnel's time to accept.
    """
    rng = random.Random(f"{seed}:feedback")
    delays = random.Random(f"{seed}:answer-times")
    order = sorted(handoffs)
    rng.shuffle(order)
    cuts = [round(len(order) * share) for share in (0.5, 0.75, 0.85)]
    hubspot, salesforce = [], []
    for position, (crm, crm_id) in enumerate(order):
        answer = ["accepted", "not_ready", "bad_data", ""][sum(position >= cut for cut in cuts)]
        values = FEEDBACK.get(crm, {}).get(answer)
        if not values:
            continue
        value = rng.choice(values)
        answered = at
        if handed_off and (crm, crm_id) in handed_off:
            answered = min(at, handed_off[(crm, crm_id)] + timedelta(hours=delays.uniform(1, 72)))
        stamp = answered.astimezone(UTC).strftime(SF_TIME)
        if crm == "hubspot":
            hubspot.append({"eventId": rng.randrange(10**8, 10**10), "subscriptionId": CHANGE_SUB,
                            "portalId": PORTAL_ID, "appId": APP_ID, "occurredAt": int(answered.timestamp() * 1000),
                            "subscriptionType": "contact.propertyChange", "attemptNumber": 0,
                            "objectId": int(crm_id), "propertyName": "hs_lead_status", "propertyValue": value,
                            "changeSource": "CRM_UI", "sourceId": f"userId:{rng.randrange(10**7, 10**8)}"})
        elif (lead := leads.get((crm, crm_id))) is not None and lead.sobject:
            salesforce.append({"id": "04l" + "".join(rng.choices(_ALNUM, k=15)),
                               "sobject": lead.sobject | {"Status": value, "LastModifiedDate": stamp}})
    return ([OutgoingRequest(HUBSPOT_PATH, c) for c in _chunks(hubspot, CRM_BATCH)]
            + [OutgoingRequest(SALESFORCE_PATH, c) for c in _chunks(salesforce, CRM_BATCH)])


def deal_requests(accepted: list[tuple[str, str]], leads: Mapping[tuple[str, str], DemoLead], seed: int,
                  at: datetime, accepted_at: Mapping[tuple[str, str], datetime] | None = None
                  ) -> list[OutgoingRequest]:
    """Return the deals sales makes of the accepted hand-offs ``(crm, crm_id)``: most get one, and of
    those about half are won, a third lost, the rest still open.

    HubSpot: the deal's creation, its association with the contact, its pipeline, stage, amount and
    currency, then the stage it closes in (generic notifications). Salesforce: the Lead converted
    into a Contact and an Opportunity, then the Opportunity as it opens and as it closes (outbound
    messages with ``IsClosed``/``IsWon``). Business times are a few seconds after ``at``, or, for a
    lead in ``accepted_at`` (when sales accepted it), the deal opens one to ten days after the
    acceptance and closes one to four weeks later (never after ``at``): the funnel's time to win.
    """
    rng = random.Random(f"{seed}:deals")
    delays = random.Random(f"{seed}:deal-times")
    hubspot, salesforce = [], []
    for crm, crm_id in sorted(accepted):
        lead = leads.get((crm, crm_id))
        if lead is None or rng.random() >= DEAL_SHARE:
            continue
        end = rng.choices([e for e, _ in DEAL_ENDS], [w for _, w in DEAL_ENDS])[0]
        # Seconds after ``at``: by the time the worker gets to them they have happened.
        opened = at + timedelta(seconds=rng.uniform(1, 5))
        closed = opened + timedelta(seconds=rng.uniform(1, 10)) if end != "open" else None
        if accepted_at and (crm, crm_id) in accepted_at:
            opened = min(opened, accepted_at[(crm, crm_id)] + timedelta(days=delays.uniform(1, 10)))
            closed = min(closed, opened + timedelta(days=delays.uniform(7, 28))) if closed is not None else None
        country = next((code for code, spec in COUNTRIES.items() if lead.fields.get("country") in (code, spec[0])), "")
        worth = (rng.choice(DEAL_AMOUNTS), CURRENCIES.get(country, "EUR"))
        if crm == "hubspot":
            hubspot += _hubspot_deal(rng, int(crm_id), opened, closed, DEAL_STAGES[crm], end, worth)
        elif lead.sobject:
            salesforce += _salesforce_deal(rng, lead, opened, closed, DEAL_STAGES[crm], end, worth)
    return ([OutgoingRequest(HUBSPOT_PATH, c) for c in _chunks(hubspot, CRM_BATCH)]
            + [OutgoingRequest(SALESFORCE_PATH, c) for c in _chunks(salesforce, CRM_BATCH)])


def _hubspot_deal(rng: random.Random, contact: int, opened: datetime, closed: datetime | None,
                  stages: Mapping[str, str], end: str, worth: tuple[int, str]) -> list[dict[str, Any]]:
    deal = rng.randrange(10**9, 10**11)

    def event(when: datetime, subscription: int, change: str, **extra: Any) -> dict[str, Any]:
        return {"eventId": rng.randrange(10**8, 10**10), "subscriptionId": subscription, "portalId": PORTAL_ID,
                "appId": APP_ID, "occurredAt": int(when.timestamp() * 1000), "subscriptionType": f"object.{change}",
                "attemptNumber": 0, "changeSource": "CRM_UI", "sourceId": f"userId:{rng.randrange(10**7, 10**8)}",
                **extra}

    def association(from_id: int, from_type: str, to_id: int, to_type: str, type_id: int) -> dict[str, Any]:
        names = {"0-1": "CONTACT", "0-3": "DEAL"}
        return event(opened, DEAL_ASSOCIATION_SUB, "associationChange",
                     associationType=f"{names[from_type]}_TO_{names[to_type]}", associationCategory="HUBSPOT_DEFINED",
                     associationTypeId=type_id, fromObjectId=from_id, fromObjectTypeId=from_type, toObjectId=to_id,
                     toObjectTypeId=to_type, associationRemoved=False, isPrimaryAssociation=False)

    def change(when: datetime, name: str, value: str) -> dict[str, Any]:
        return event(when, DEAL_CHANGE_SUB, "propertyChange", objectId=deal, objectTypeId="0-3", propertyName=name,
                     propertyValue=value, isSensitive=False)

    events = [event(opened, DEAL_SUB, "creation", objectId=deal, objectTypeId="0-3", changeFlag="CREATED"),
              association(deal, "0-3", contact, "0-1", 3), association(contact, "0-1", deal, "0-3", 4),
              change(opened, "pipeline", "default"), change(opened, "dealstage", stages["open"]),
              change(opened, "amount", str(worth[0])), change(opened, "deal_currency_code", worth[1])]
    if closed is not None:
        events.append(change(closed, "dealstage", stages[end]))
    return events


def _salesforce_deal(rng: random.Random, lead: DemoLead, opened: datetime, closed: datetime | None,
                     stages: Mapping[str, str], end: str, worth: tuple[int, str]) -> list[dict[str, Any]]:
    assert lead.sobject is not None
    contact = id18("003" + "".join(rng.choices(_ALNUM, k=12)))
    opportunity = id18("006" + "".join(rng.choices(_ALNUM, k=12)))

    def notification(sobject_type: str, sobject: dict[str, Any]) -> dict[str, Any]:
        return {"id": "04l" + "".join(rng.choices(_ALNUM, k=15)), "type": sobject_type, "sobject": sobject}

    converted = lead.sobject | {"Status": "Closed - Converted", "IsConverted": "true", "ConvertedContactId": contact,
                                "ConvertedOpportunityId": opportunity, "ConvertedDate": opened.strftime("%Y-%m-%d"),
                                "LastModifiedDate": opened.strftime(SF_TIME)}
    company = lead.fields.get("company") or lead.email.split("@")[1]

    def state(stage: str, when: datetime, is_closed: bool, is_won: bool) -> dict[str, Any]:
        return {"Id": opportunity, "Name": f"{company} - fleet visibility", "StageName": stage,
                "Amount": f"{worth[0]}.0", "CurrencyIsoCode": worth[1], "IsClosed": str(is_closed).lower(),
                "IsWon": str(is_won).lower(), "CloseDate": (closed or opened + timedelta(days=30)).strftime("%Y-%m-%d"),
                "CreatedDate": opened.strftime(SF_TIME), "ContactId": contact,
                "LastModifiedDate": when.strftime(SF_TIME)}

    items = [notification("Lead", converted), notification("Opportunity", state(stages["open"], opened, False, False))]
    if closed is not None:
        items.append(notification("Opportunity", state(stages[end], closed, True, end == "won")))
    return items


def _allocate(total: int, weights: list[tuple[Any, int]]) -> list[Any]:
    """Return ``total`` labels in proportion to the weights (largest remainders)."""
    whole = sum(w for _, w in weights)
    counts = [total * w // whole for _, w in weights]
    for i in sorted(range(len(weights)), key=lambda i: -(total * weights[i][1] % whole))[:total - sum(counts)]:
        counts[i] += 1
    return [label for (label, _), count in zip(weights, counts, strict=True) for _ in range(count)]


def generate(leads: int = 600, seed: int = 7, now: datetime | None = None) -> Dataset:
    """Return the demo data set, the same for the same (leads, seed, now); ``now`` defaults to the clock."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    rng = random.Random(seed)
    personas, crms = _allocate(leads, [(n, p.weight) for n, p in PERSONAS.items()]), _allocate(leads, CRM_SHARES)
    rng.shuffle(personas)
    rng.shuffle(crms)
    used: set[str] = set()
    made, records = [], []
    for number, (name, crm) in enumerate(zip(personas, crms, strict=True)):
        lead, record = _lead(rng, number, name, crm, seed, now, used)
        made.append(lead)
        records += [record] if record else []
    web = [event for lead in made for event in lead.events]
    phase1, redeliveries = _phase1(rng, list(web), records)
    by_ref = {(lead.crm, lead.crm_id): lead for lead in made if lead.crm}

    def deals_builder(svc: Services, at: datetime | None = None) -> list[OutgoingRequest]:
        """Sales turns the accepted leads into deals, some won, some lost."""
        from sqlalchemy import select

        from integration.store.models import Lead

        with svc.sessions() as session:
            rows = session.execute(select(Lead.crm, Lead.crm_id, Lead.stage_changed_at).where(
                Lead.stage == "accepted", Lead.crm.is_not(None), Lead.merged_into_id.is_(None))).all()
        accepted_at = {(crm, crm_id): moment for crm, crm_id, moment in rows if moment is not None}
        return deal_requests([(crm, crm_id) for crm, crm_id, _ in rows], by_ref, seed,
                             at or max(now, datetime.now(UTC)), None if at else accepted_at)

    def phase2_builder(svc: Services, at: datetime | None = None) -> list[OutgoingRequest]:
        """Sales works the hand-offs: status changes for the leads now in stage ``mql``."""
        from sqlalchemy import select

        from integration.store.models import Lead

        with svc.sessions() as session:
            rows = session.execute(select(Lead.crm, Lead.crm_id, Lead.last_handoff_at).where(
                Lead.stage == "mql", Lead.crm.is_not(None), Lead.merged_into_id.is_(None))).all()
        # After phase 1's records (all before `now`); each answer some hours after its hand-off.
        handed_off = {(crm, crm_id): moment for crm, crm_id, moment in rows if moment is not None}
        return feedback_requests([(crm, crm_id) for crm, crm_id, _ in rows], by_ref, seed,
                                 at or max(now, datetime.now(UTC)), None if at else handed_off)

    return Dataset(lead_count=len(made), event_count=len(web) + len(records), phase1=phase1,
                   phase2_builder=phase2_builder, leads=made, redeliveries=redeliveries, deals_builder=deals_builder)
