"""Revocation in other words: is an inbound text a request to stop messages? (pure, no ORM)

A text that is not a keyword (consent/keywords.py) may still ask to stop: "pls stop txting me",
"take me off your list", "je ne veux plus recevoir vos SMS". US law counts any reasonable means
(FCC 24-24, 47 CFR §64.1200(a)(10)), the GDPR says withdrawing must be as easy as giving (art.
7(3)). This module answers, for one text:

- ``revocation``: it clearly asks to stop; applied like a bare STOP.
- ``maybe``: it may be one, but a person should read it ("stop sending me the red one, I want
  blue"); it goes to the revocation review queue, and is applied at the review deadline if nobody
  decided (other wording creates a rebuttable presumption of revocation).
- ``none``: it is not one ("can't stop smiling, thanks!", "will you stop by tomorrow?",
  "arrête pas, c'est super").

Rules, not a model: each rule is a named regular expression over the folded text (the folding of
consent/keywords.py: no accents, case-folded, every run of punctuation or spaces one space, so
"don't" is "don t" and "m'envoyez" is "m envoyez"), with the source it comes from. Classifying:

1. Guards (``none`` rules) blank the phrases in which a stop word does not mean "stop messaging
   me" ("bus stop", "stop by", "don't stop", "arrête pas", "sans arrêt").
2. The first ``revocation`` rule that matches what is left wins; else the first ``maybe`` rule;
   else ``none`` (naming the guard that explained the stop word, if one did).

The deadline of a review (10 US business days: Monday to Friday, not a US federal holiday) is
computed here too (`review_deadline`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_lib

from .keywords import fold

REVOCATION = "revocation"
MAYBE = "maybe"
NONE = "none"
GUARD = "guard"

# Longer texts are classified on their first characters only (10 SMS segments).
MAX_TEXT_LENGTH = 1600

# --- where the rules come from ---------------------------------------------------------------

FCC = ("FCC 24-24 (89 FR 15756, 2024-03-05), 47 CFR §64.1200(a)(10), in force 2025-04-11: a reply of "
       "stop, quit, end, revoke, opt out, cancel or unsubscribe always revokes; other wording is judged "
       "on the totality of the circumstances and creates a rebuttable presumption of revocation")
FCC_PRESUMPTION = ("FCC 24-24, 47 CFR §64.1200(a)(10): wording other than the listed words creates a rebuttable "
                   "presumption of revocation; a person decides, and the text is applied at the deadline "
                   "(§64.1200(a)(10): honoured within 10 business days)")
CTIA = ("CTIA Messaging Principles and Best Practices (May 2023) §5.1.3: opt-out requests in normal language "
        "(stop, end, unsubscribe, cancel, quit, \"please opt me out\") should be read and acted upon")
GDPR = ("GDPR art. 7(3): withdrawing consent must be as easy as giving it; art. 21(2)-(3): objection to direct "
        "marketing, after which the data are no longer processed for it")
CNIL = ("CNIL, \"La prospection commerciale par SMS-MMS\": the person can object simply and free of charge "
        "(Code des postes et des communications électroniques art. L34-5); AF2M Charte Business Messaging: "
        "the STOP mention in every promotional SMS")
PLAIN_MEANING = ("Plain meaning: a reasonable person would not read this phrase as a request to stop messages "
                 "(FCC 24-24, totality of the circumstances)")
NO_CONSENT = ("FCC 24-24 and 47 CFR §64.1200(a)(10): the person says the number is not theirs or that they never "
              "agreed; continuing would be messaging without consent")


@dataclass(frozen=True)
class Rule:
    """One named rule: `kind` is revocation, maybe or guard; `pattern` is matched on the folded text."""

    name: str
    kind: str
    language: str  # "en", "fr" or "any"
    pattern: str
    source: str
    example: str

    @property
    def regex(self) -> re.Pattern:
        return _compiled(self.pattern)


_CACHE: dict[str, re.Pattern] = {}


def _compiled(pattern: str) -> re.Pattern:
    compiled = _CACHE.get(pattern)
    if compiled is None:
        compiled = _CACHE[pattern] = re.compile(pattern)
    return compiled


@dataclass(frozen=True)
class Classification:
    """What a text is; `rule` is the rule that decided (None when nothing matched at all)."""

    kind: str
    rule: Rule | None = None

    @property
    def rule_name(self) -> str:
        return self.rule.name if self.rule else ""


# --- vocabulary (folded: lower case, no accents, apostrophes are spaces) ---------------------


def _words(*alternatives: str) -> str:
    return "(?:" + "|".join(alternatives) + ")"


# The words of the law and of the industry's STOP wording, alone or with courtesy around them.
EN_STOP_WORDS = _words("stop", "stopall", "stop all", "quit", "end", "cancel", "revoke", "opt out", "optout",
                       "unsubscribe", "unsub", "cease", "halt", "remove", "remove me")
FR_STOP_WORDS = _words("arret", "arrete", "arretez", "arreter", "arretes", "stoppe", "stoppez", "stopper",
                       "desabonner", "desabonne", "desabonnez", "desinscription", "desinscrire", "desinscrivez",
                       "cessez", "cesse", "annuler", "annulez", "fin", "basta")
FILLER = _words(
    # English courtesy and emphasis
    "please", "pls", "plz", "plez", "plse", "pleas", "kindly", "now", "right now", "thanks", "thank you", "thx",
    "ty", "already", "just", "ok", "okay", "again", "asap", "immediately", "at once", "it", "this", "that", "all",
    "them", "it all", "everything", "for good", "forever", "for ever", "for real", "seriously", "me", "sir", "madam",
    "guys", "you", "u", "lol", "omg", "ffs", "god", "damn", "dammit", "man", "dude", "bro", "the", "texts",
    "messages", "msgs",
    # French
    "merci", "svp", "stp", "s il vous plait", "s il te plait", "sil vous plait", "sil te plait", "maintenant",
    "immediatement", "tout de suite", "de suite", "deja", "tout", "tous", "toutes", "ca", "cela", "ceci",
    "definitivement", "pitie", "bordel", "putain", "a tous", "mes", "les", "sms", "messages", "textos",
    "oui", "bon", "allez", "vraiment", "franchement", "monsieur", "madame",
)
EN_MEDIUM = _words(
    "texts?", "txts?", "txt", "text messages?", "messages?", "msgs?", "msg", "sms", "sms s", "smss", "smses",
    "notifications?", "notifs?", "alerts?", "promos?", "promotions?", "promotional messages?", "offers?", "ads?",
    "adverts?", "advertisements?", "advertising", "deals?", "marketing", "spam", "spams", "junk", "newsletters?",
    "updates?", "reminders?", "blasts?", "mass texts?", "automated messages?", "robotexts?", "coupons?",
    "whatsapps?", "whatsapp messages?", "solicitations?", "sales texts?", "subscriptions?",
)
EN_DETERMINER = _words("the", "these", "those", "this", "that", "your", "ur", "yr", "all", "all the", "all of the",
                       "all these", "all your", "any", "any more", "anymore", "any of your", "any of these", "more",
                       "further", "such", "stupid", "damn", "annoying", "fucking", "freaking", "frigging", "daily",
                       "constant", "endless", "random", "weekly", "monthly", "hourly", "nightly", "new", "promotional", "marketing", "automated", "spam", "text",
                       "of", "with", "with the", "with all the", "with these", "with your", "me", "us")
EN_CONTACT_VERB = _words("text", "txt", "tx", "texting", "txting", "texing", "txing", "textin", "txtin", "message",
                         "messaging", "messageing", "msg", "msging", "msgs", "contact", "contacting", "spam",
                         "spamming", "spaming", "bother", "bothering", "harass", "harassing", "hassle", "hassling",
                         "pester", "pestering", "ping", "pinging", "call", "calling", "email", "emailing",
                         "sms", "smsing", "whatsapp", "whatsapping", "hit me up", "hitting me up", "blowing up my phone",
                         "blow up my phone", "blowing my phone up", "write", "writing", "reach out", "reaching out",
                         "solicit", "soliciting", "send", "sending")
EN_RECIPIENT = _words("me", "us", "this number", "my number", "my phone", "my cell", "this phone", "my mobile",
                      "my wife", "my husband", "my son", "my daughter", "my mom", "my dad", "my kid", "my child")
EN_END_OF_REQUEST = _words("anymore", "any more", "again", "ever again", "ever", "please", "pls", "plz",
                           "thanks", "thank you", "thx", "ty", "period", "going forward", "from now on",
                           "in the future", "no more", "never", "at all", "ok", "okay", "for good", "bye",
                           "goodbye", "now", "whatsoever", "lol", "ffs", "at all")
# What may follow a complete request: the end, or the start of another clause.
EN_NEXT_CLAUSE = (r"(?=$| (?:i|im|i m|i am|i ve|you|u|we|this|it|its|it s|thanks|thank|please|pls|plz|and|or|ever|"
                  r"again|anymore|stop|not|never|bye|ok|okay|lol|no|who|how|why|seriously|wrong|unsubscribe|"
                  r"remove|leave)(?: |$))")
FR_AFTER = (r"(?=$| (?:svp|stp|merci|s il|sil|je|j|c|ca|on|vous|nous|tu|et|ou|car|parce|mais|plus|de votre part|"
            r"de vous|sur ce numero|sur mon numero|sur mon portable|sur ce portable|a ce numero|publicitaires?|"
            r"promotionnel\w*|commerciaux|commerciales?|intempesti\w*|non|bordel|putain|pitie|par pitie|"
            r"maintenant|immediatement|tout de suite|desormais|dorenavant|a l avenir|ok|bonne|cordialement|"
            r"au revoir|de merde|a la con|de pub|de publicite|de promo|de promotion|whatsapp|par sms|par message|"
            r"par texto|svp|en general|du tout|aussi|egalement|non plus|qui|sans|tout le temps)(?: |$))")
FR_MEDIUM = _words(
    "sms", "messages?", "mess", "msg", "textos?", "texto", "mails?", "e mails?", "courriels?", "notifications?",
    "notifs?", "alertes?", "pubs?", "publicites?", "publicite", "promos?", "promotions?", "offres?",
    "offres? promotionnelles?", "messages? promotionnels?", "messages? publicitaires?", "sms publicitaires?",
    "sollicitations?", "relances?", "envois?", "spams?", "newsletters?", "lettres? d information", "informations?",
    "infos?", "actualites?", "nouvelles?", "bons plans?", "communications?", "whatsapp", "messages? whatsapp",
    "conneries?", "trucs?", "choses?", "propositions?", "campagnes?", "annonces?",
)
FR_DETERMINER = _words("vos", "ces", "les", "des", "de", "d", "aucun", "aucune", "votre", "ce", "cette", "vos",
                       "tous ces", "tous vos", "tous les", "toutes ces", "toutes vos", "toutes les", "plus de",
                       "vos foutus", "vos satanes", "vos fichus", "vos", "ces foutus", "ces", "de vos", "de ces",
                       "d autres", "encore des", "encore de", "la", "le", "l", "un", "une", "moi", "me", "m",
                       "nous", "mes", "ma", "mon", "ton", "tes")
FR_CONTACT_VERB = _words("envoyer", "envoyez", "envoie", "envoies", "envoyes", "ecrire", "ecrivez", "ecris",
                         "contacter", "contactez", "contacte", "harceler", "harcelez", "harcele", "spammer", "spammez",
                         "spamer", "texter", "textez", "appeler", "appelez", "appelle", "relancer", "relancez",
                         "solliciter", "sollicitez", "deranger", "derangez", "embeter", "embetez", "importuner",
                         "importunez", "saouler", "saoulez", "soulez", "souler", "polluer", "polluez",
                         "bombarder", "bombardez", "inonder", "inondez", "demarcher", "demarchez", "joindre",
                         "adresser", "faire parvenir")
FR_PRONOUN = _words("m", "me", "nous", "moi")


def _rule(name, kind, language, pattern, source, example) -> Rule:
    return Rule(name=name, kind=kind, language=language, pattern=pattern, source=source, example=example)


B = r"(?:^| )"  # a word starts here
E = r"(?= |$)"  # a word ends here

# --- guards: a stop word that does not mean "stop messaging me" ------------------------------

GUARDS: tuple[Rule, ...] = (
    _rule("en_cannot_stop_doing", GUARD, "en",
          B + r"(?:can t|cant|cannot|can not|couldn t|couldnt|could not|won t be able to|never want to|don t want to|"
              r"dont want to|do not want to|never gonna|not gonna|i ll never|will never) "
              r"(?:ever )?stop (?!(?:" + EN_CONTACT_VERB + r")(?: |$))\w+(?:ing|in)" + E,
          PLAIN_MEANING, "can't stop smiling, thanks!"),
    _rule("en_do_not_stop", GUARD, "en",
          B + r"(?:don t|dont|do not|never|please don t|pls don t|didn t|did not|not|no need to|"
              r"shouldn t|why would i|why would you) (?:ever |you |u |ya |guys |dare )?"
              r"(?:stop|quit|end|cancel|unsubscribe|unsub|opt out|optout|opt me out|unsubscribe me|remove me|"
              r"want to (?:stop|unsubscribe|opt out|cancel|quit)|mean to (?:stop|unsubscribe|opt out|cancel)|"
              r"meant to (?:stop|unsubscribe|opt out|cancel)|wanna (?:stop|unsubscribe|opt out|cancel|quit))"
              r"(?: (?:" + EN_CONTACT_VERB + r"))?(?: (?:me|us|them|it|now|yet|please|pls))?" + E,
          PLAIN_MEANING, "don't stop, I love these deals"),
    _rule("en_keep_them_coming", GUARD, "en",
          B + r"keep (?:them|em|it|these|those|the \w+|ur \w+|your \w+) (?:coming|up)" + E,
          PLAIN_MEANING, "keep them coming!"),
    _rule("en_stop_by", GUARD, "en",
          B + r"(?:stop|stopping|stopped) (?:by|in|into|over|off|past|through|round|around|at(?! once)|"
              r"and (?:see|get|pick|grab|shop|check|visit|say|chat|buy)|for (?:a|an|some|coffee|lunch|dinner|gas|"
              r"food|drinks?|groceries))" + E,
          PLAIN_MEANING, "will you stop by tomorrow?"),
    _rule("en_a_stop", GUARD, "en",
          B + r"(?:bus|train|tram|subway|metro|last|next|first|one|pit|truck|rest|full|whistle|quick|short|"
              r"a|the|my|your|our|his|her|their|every|each|that|this|final|second|third|shuttle|non|nonstop|"
              r"brief|next to the|two|three) stop(?:s)?" + E
              + r"|" + B + r"stop (?:sign|signs|light|lights|watch|motion|loss|gap|button|request|codon|order)" + E
              + r"|" + B + r"nonstop" + E,
          PLAIN_MEANING, "I'm at the bus stop"),
    _rule("en_stop_it_you", GUARD, "en",
          B + r"stop (?:it )?(?:you re|youre|ur) (?:making|killing|so|too)" + E,
          PLAIN_MEANING, "stop it, you're making me blush"),
    _rule("en_end_of", GUARD, "en",
          B + r"(?:the|an|at the|in the|by the|till the|until the|before the|to the|no|dead|front|back|high|low|"
              r"year|month|week|season|ends?|which|deep|tail|far|west|east) end" + E
              + r"|" + B + r"end (?:of|up|date|time|result|game|user|users|product|table|zone)" + E
              + r"|" + B + r"(?:when|what time|what day|how long|till when) (?:\w+ ){0,4}end" + E,
          PLAIN_MEANING, "when does the sale end?"),
    _rule("en_cancel_something_else", GUARD, "en",
          B + r"cancel(?:led|ed|ling|ing)? (?:my|the|our|an|a|that|this|his|her|their|your) "
              r"(?:\w+ )?(?:order|orders|appointment|appointments|reservation|reservations|booking|bookings|flight|"
              r"delivery|payment|card|trip|visit|table|room|ticket|tickets|plan|plans|account|purchase|pickup|"
              r"class|session|meeting|call|return|refund|transaction|item|items|package|shipment|bill|test|"
              r"consultation|tour|event|party|check|cheque|credit card|ride|lesson|treatment|surgery)" + E,
          PLAIN_MEANING, "please cancel my order 1234"),
    _rule("en_quit_something_else", GUARD, "en",
          B + r"(?:quit|quitting|quitted) (?:my|the|his|her|their|our|a|an|smoking|drinking|vaping|sugar|"
              r"carbs|coffee|caffeine|alcohol|gambling|school|college|work|using|playing|working|that job)" + E,
          PLAIN_MEANING, "I quit my job so I can shop more"),
    _rule("en_stop_doing_other", GUARD, "en",
          B + r"(?:to|will|would|should|could|can|must|might|i|we|you|they|he|she|it|who|never|finally|"
              r"trying to|try to|had to|have to|has to|gotta|need to|going to|gonna|want to|wanna|decided to|"
              r"help me|helps me|helped me|made me|make me|makes me) stop "
              r"(?:smoking|drinking|eating|snacking|worrying|crying|laughing|smiling|thinking|biting|sweating|"
              r"snoring|vaping|bleeding|itching|coughing|shaking|hurting|working|gambling|overspending|spending|"
              r"shopping|wasting|looking|buying|paying|using|scratching|falling|leaking|dripping|losing|"
              r"hair loss|the itching|the pain|the bleeding|the leak|my dog|my cat|the dog|the noise|the rain|"
              r"squeaking|beeping|barking|breaking|fading|shedding|frizz|the frizz|acne|breakouts|wrinkles|"
              r"aging|the aging|time|the clock|global warming|inflation|traffic)" + E,
          PLAIN_MEANING, "this cream helped me stop the itching"),
    _rule("fr_ne_pas_arreter", GUARD, "fr",
          B + r"(?:n |ne |n y |ne vous |ne t |ne te |surtout ne |surtout n |surtout pas |jamais )?"
              r"(?:arrete|arretez|arretes|arreter|arretons|t arrete|t arretes|vous arretez|stoppe|stoppez|stopper|"
              r"cesse|cessez) (?:jamais|pas|plus jamais|surtout pas|point)" + E
              + r"|" + B + r"(?:ne|n) (?:vous |te |t |nous |me |m )?(?:arretez|arrete|arretes|arreter|stoppez|"
              r"stoppe|cessez|cesse|desabonnez|desabonne|desinscrivez) (?:pas|jamais|surtout pas)" + E
              + r"|" + B + r"(?:ne pas|jamais|surtout pas) (?:m |me |nous |vous |te )?"
              r"(?:arreter|stopper|desabonner|desinscrire|cesser)" + E
              + r"|" + B + r"(?:je ne veux pas|je veux pas|je ne souhaite pas|je souhaite pas|je ne voulais pas|"
              r"je voulais pas|sans) (?:me |m |vous |nous )?(?:arreter|stopper|desabonner|desinscrire|"
              r"vous desabonner|cesser)" + E,
          PLAIN_MEANING, "arrête pas, c'est super"),
    _rule("fr_continuez", GUARD, "fr",
          B + r"(?:continuez|continue|continuer) (?:comme ca|ainsi|a m envoyer|a nous envoyer|de m envoyer|"
              r"vos|les|ces|surtout)" + E,
          PLAIN_MEANING, "continuez comme ça !"),
    _rule("fr_un_arret", GUARD, "fr",
          B + r"(?:sans|un|l|a l|d|au prochain|le prochain|prochain|dernier|premier|mon|ton|son|notre|votre|"
              r"leur|cet|bouton) arret(?:s)?" + E
              + r"|" + B + r"arret(?:s)? (?:de bus|du bus|de tram|du tram|de metro|maladie|de travail|de train|"
              r"cardiaque|d urgence|au stand|sur image|de jeu|de la production|des ventes|de commercialisation|"
              r"de la collection|de la gamme|du produit|de production|pipi)" + E
              + r"|" + B + r"(?:stop|stops) (?:ou encore|and go)" + E
              + r"|" + B + r"(?:auto stop|autostop|faire du stop)" + E,
          PLAIN_MEANING, "je suis à l'arrêt de bus"),
    _rule("fr_arreter_autre_chose", GUARD, "fr",
          B + r"(?:j|je|tu|il|elle|on|nous|vous|ils|elles|n|ne|pour|de|d|a|me|m|t|te|se|s|veux|voudrais|"
              r"dois|peux|vais|va|faut|aide a|aider a|m aide a|m a aide a|essaie d|essaye d)? ?"
              r"(?:arrete|arretez|arreter|arretes|arretons|arrete pas) "
              r"(?:de |d )?(?:fumer|boire|manger|rire|sourire|pleurer|penser|grignoter|travailler|courir|"
              r"acheter|commander|craquer|chercher|regarder|parler|utiliser|attendre|tousser|saigner|tomber|"
              r"perdre|gaspiller|chez|a la|au|devant|en route|en chemin|pres|le sucre|le cafe|l alcool|"
              r"la cigarette|le tabac)" + E,
          PLAIN_MEANING, "j'arrête de fumer grâce à vous"),
    _rule("fr_plus_d_informations", GUARD, "fr",
          B + r"(?:je |j |nous |on )?(?:veux|voudrais|voudrions|aimerais|aimerions|souhaite|souhaiterais|besoin d|"
              r"besoin de|avoir) (?:avoir )?plus (?:d |de )(?:infos?|informations?|details?|renseignements?|"
              r"precisions?|choix|tailles?|couleurs?|photos?|stock|modeles?|references?)" + E,
          PLAIN_MEANING, "je veux plus d'infos sur la promo"),
    _rule("fr_annuler_autre_chose", GUARD, "fr",
          B + r"annul(?:er|ez|e|es|ee|ation) (?:de )?(?:ma|mon|la|le|l|notre|cette|ce|mes|les|une|un) "
              r"(?:\w+ )?(?:commande|commandes|rendez vous|rdv|reservation|reservations|livraison|vol|voyage|"
              r"paiement|carte|billet|billets|achat|visite|table|chambre|seance|cours|rendez|retour|colis|"
              r"prelevement|virement|consultation|sejour|location)" + E,
          PLAIN_MEANING, "annuler ma commande 1234"),
)

# --- clear revocations -----------------------------------------------------------------------

REVOCATIONS: tuple[Rule, ...] = (
    _rule("keyword_with_courtesy", REVOCATION, "any",
          r"^(?:(?:" + FILLER + r") )*(?:" + EN_STOP_WORDS + r"|" + FR_STOP_WORDS + r")"
          r"(?: (?:" + FILLER + r"|" + EN_STOP_WORDS + r"|" + FR_STOP_WORDS + r"))*$",
          FCC + "; " + CTIA, "Stop please!!"),
    _rule("en_unsubscribe_opt_out", REVOCATION, "en",
          B + r"(?:unsubscribe|unsubscribed|unsubscribing|unsub|unsubs|unsuscribe|unsubcribe|unsubscibe|unsubsribe|"
              r"unscribe|unsubscrib|un subscribe|unsubscription|opt out|optout|opt me out|opt us out|opting out|"
              r"opt outs|opt my number out|take me out of (?:the|this|your) (?:list|program|subscription))" + E,
          FCC + "; " + CTIA, "how do I unsubscribe from this?"),
    _rule("en_revoke_consent", REVOCATION, "en",
          B + r"(?:revoke|revoking|revoked|withdraw|withdrawing|rescind|rescinding|retract|retracting|cancel|"
              r"cancelling|canceling|terminate|end|remove|pull|take back|taking back) (?:my |our |all |any |the )?"
              r"(?:prior |express |previous |written )?(?:consent|permission|permissions|authorization|"
              r"authorisation|agreement|opt in|optin|subscription|subscriptions|membership to (?:your|the) texts?|"
              r"enrollment|enrolment|sign up|signup)" + E
              + r"|" + B + r"(?:i |we )?(?:revoke|revoked)" + E,
          FCC + "; " + GDPR, "I revoke my consent"),
    _rule("en_stop_contacting_me", REVOCATION, "en",
          B + r"(?:stop|quit|cease|end|halt|discontinue|no more|enough) (?:(?:please|pls|plz|now|just|u|you|ya|"
              r"guys|all|already|fucking|freaking|effing|frigging|damn|with|the|constantly|ever|bloody) ){0,3}"
              r"(?:texting|txting|texing|txing|textin|txtin|messaging|messageing|msging|contacting|spamming|"
              r"spaming|bothering|harassing|hassling|pestering|pinging|calling|emailing|smsing|whatsapping|"
              r"hitting me up|blowing up my phone|blowing my phone up|writing to me|writing me|reaching out|"
              r"soliciting|text me|txt me|message me|msg me|contact me|spam me|bug me|bugging me|bugging)"
              r"(?! (?:me )?(?:about|before|after|at|on|during|until|till|when|while|so|between|late|early|"
              r"on weekends|in the morning|at night)(?: |$))" + E,
          FCC + "; " + CTIA, "pls stop txting me"),
    _rule("en_stop_sending_messages", REVOCATION, "en",
          B + r"(?:stop|quit|cease|end|halt|discontinue|no more|don t|dont|do not|never|please stop|pls stop) "
              r"(?:(?:please|pls|plz|now|just|u|you|ya|guys|all|already|fucking|freaking|damn|ever) ){0,2}"
              r"(?:sending|send|sendin|forwarding|pushing|blasting) (?:(?:" + EN_DETERMINER + r") ){0,3}"
              r"(?:" + EN_MEDIUM + r"|stuff|crap|shit|garbage|things|anything|them|these|those|this|it)"
              r"(?! (?:to|about|for|of|at|in|on|before|after|during|until|till|when|while)(?: |$))" + E
              + r"|" + B + r"(?:stop|quit|please stop|pls stop) (?:(?:please|pls|plz|now|just|already) ){0,2}"
              r"(?:sending|sendin|sending me|sending us|sending messages|sending texts)$",
          FCC + "; " + CTIA, "stop sending me these texts"),
    _rule("en_stop_the_messages", REVOCATION, "en",
          B + r"(?:stop|stopall|quit|cease|end|halt|cancel|discontinue|unsubscribe|enough|no more|no further|"
              r"not any more|not anymore) (?:(?:" + EN_DETERMINER + r") ){0,3}(?:" + EN_MEDIUM + r")"
              r"(?! (?:to|about|for|of|at|in|on|before|after|during|until|till|when|while|from|between|so|but)"
              r"(?: |$))" + E,
          FCC + "; " + CTIA, "no more texts please"),
    _rule("en_stop_receiving", REVOCATION, "en",
          B + r"(?:stop|quit|cease|no longer|not) (?:(?:please|pls|just|ever) )?(?:receiving|getting|be getting|"
              r"be receiving|to receive|to get|want to receive|want to get|wish to receive) "
              r"(?:(?:" + EN_DETERMINER + r") ){0,3}(?:" + EN_MEDIUM + r"|these|them|this|those|it|anything|"
              r"anything from you)" + EN_NEXT_CLAUSE
              + r"|" + B + r"(?:want|like|need|wish|would like|d like) (?:(?:" + EN_DETERMINER + r") ){0,3}"
              r"(?:" + EN_MEDIUM + r"|them|these|this|it) to (?:stop|end|cease)" + EN_NEXT_CLAUSE,
          FCC + "; " + CTIA, "I'd like to stop receiving texts"),
    _rule("en_do_not_contact_me", REVOCATION, "en",
          B + r"(?:don t|dont|do not|never|pls don t|please don t|please do not|you shouldn t|u shouldn t|"
              r"stop trying to|no need to) (?:ever |u |you |guys |y all |yall )?(?:" + EN_CONTACT_VERB + r")"
              r" (?:(?:" + EN_DETERMINER + r") ){0,2}(?:" + EN_RECIPIENT + r"|"
              + EN_MEDIUM + r")(?: (?:" + EN_END_OF_REQUEST + r"))*" + EN_NEXT_CLAUSE
              + r"|" + B + r"(?:don t|dont|do not|never) (?:ever )?(?:text|txt|message|msg|contact|spam|send)"
              r" (?:me|us) (?:anything|anymore|any more|again)" + E,
          FCC + "; " + CTIA, "don't text me anymore"),
    _rule("en_do_not_want_messages", REVOCATION, "en",
          B + r"(?:i |we |i really |i honestly )?(?:don t|dont|do not|no longer|dont ever|don t ever|never|didn t|"
              r"did not|won t|wont|will not|really don t|do not wish to|don t wish to) "
              r"(?:want|wish|need|like|care for|care to|intend to|agree to|consent to|accept) "
              r"(?:to |any |these |your |those |ur |more |any more |anymore |further |your stupid |"
              r"(?:to )?(?:receive|get|be getting|be receiving|keep getting|keep receiving|see|have|be sent|be "
              r"contacted by|be texted|be messaged|hear from|be on) |to be (?:texted|contacted|messaged|spammed|"
              r"on (?:your|the|this) list)|any more of |more of |of |with )*"
              r"(?:" + EN_MEDIUM + r"|texts? from you|your list|this list|your texts|them|these|this|"
              r"anything from you|anything|anymore|any more|them anymore|these anymore)" + E
              + r"|" + B + r"(?:i |we )?(?:no longer|don t|dont|do not) (?:want|wish) to (?:be )?"
              r"(?:receive|get|be contacted|contacted|texted|messaged|subscribed|on (?:your|the|this) list|hear "
              r"from you|participate|be part of)" + E,
          FCC + "; " + CTIA, "I don't want your texts"),
    _rule("en_remove_me", REVOCATION, "en",
          B + r"(?:remove|rmv|delete|del|erase|drop|take|strike|scratch|cross|wipe|purge|forget|"
              r"deregister|unenroll|unenrol|unregister|unlist) (?:me|us|my number|my phone number|my cell|"
              r"my cell number|my mobile|my mobile number|my name|my info|my information|my details|my contact|"
              r"my contact info|my data|this number|this phone|this phone number|the number|my phone|my #|"
              r"my num|number|it|myself|him|her|my wife|my husband|my son|my daughter|my mom|my dad)"
              r"(?: (?:off|from|out of|out|of|now|immediately|please|pls|asap|thanks|thank you|right now|"
              r"permanently|completely|entirely|for good|already|too|as well|on|for|in)(?: |$)|$)"
              + r"|" + B + r"(?:off|out of) (?:your|the|this) (?:list|lists|mailing list|texting list|text list|sms "
              r"list|contact list|database|system|distribution list|marketing list|subscriber list)" + E,
          FCC + "; " + CTIA, "take me off your list"),
    _rule("en_leave_me_alone", REVOCATION, "en",
          B + r"(?:leave me alone|leave me be|leave us alone|let me be|get lost|piss off|fuck off|f off|bugger off|"
              r"buzz off|sod off|go to hell|lose my number|forget my number|forget i exist|delete my number|"
              r"i m done with (?:you|your|these|this|the) ?\w*|im done with (?:you|your|these|this|the) ?\w*|"
              r"i am done with (?:you|your|these|this|the) ?\w*|i want out|count me out|leave my phone alone|"
              r"no thanks stop|not interested stop|stop it now|stop already|stop this nonsense|stop this madness|"
              r"enough is enough stop)" + E,
          FCC, "leave me alone"),
    _rule("en_wrong_number", REVOCATION, "en",
          B + r"(?:wrong number|wrong #|wrong num|wrong person|wrong phone|not my number|this isn t (?:\w+ )?"
              r"number|this is not (?:\w+ )?number|i never (?:signed up|subscribed|opted in|agreed|asked|gave you|"
              r"consented)|i didn t (?:sign up|subscribe|opt in|agree|ask for (?:this|these|them|it)|consent)|"
              r"i did not (?:sign up|subscribe|opt in|agree|ask for (?:this|these|them|it)|consent)|"
              r"never (?:signed up|subscribed|opted in) for (?:this|these|that|them|it)|"
              r"didn t sign up for (?:this|these|that|them|it)|you have the wrong|u have the wrong|"
              r"you ve got the wrong|not (?:\w+ )?this is (?:\w+ )?wrong number)" + E,
          NO_CONSENT, "wrong number, I'm not Dave"),
    # French
    _rule("fr_arretez_de_m_envoyer", REVOCATION, "fr",
          B + r"(?:arret|arrete|arretez|arreter|arretes|cessez|cesse|cesser|stop|stoppez|stoppe|stopper|finissez|"
              r"merci d arreter|merci de cesser|veuillez arreter|veuillez cesser|je vous demande d arreter|"
              r"pouvez vous arreter|pourriez vous arreter|vous pouvez arreter|tu peux arreter|peux tu arreter|"
              r"pourriez vous cesser|il faut arreter|faut arreter|on arrete) (?:(?:svp|stp|donc|de suite|"
              r"maintenant|immediatement|tout de suite|de grace|par pitie|vraiment|un peu|bordel|putain) )?"
              r"(?:de |d )?(?:" + FR_PRONOUN + r" )?(?:" + FR_CONTACT_VERB + r")"
              r"(?: (?:" + FR_PRONOUN + r"))?"
              r"(?: (?:(?:" + FR_DETERMINER + r") ){0,3}(?:" + FR_MEDIUM + r")|"
              r" (?:svp|stp|merci|s il vous plait|s il te plait|maintenant|immediatement|tout de suite|"
              r"sur ce numero|sur mon numero|a ce numero|des sms|du spam|vos sms|tous ces sms|n importe quoi|"
              r"tout le temps|sans arret|a longueur de journee|constamment|chaque jour|tous les jours|a tout bout "
              r"de champ|plus jamais|jamais plus|c est (?:\w+ ){0,3}\w+|je ne suis pas|ca suffit|merci bien)"
              r"|(?= (?:je|j|on|vous|c|ca|c est|ce|car|parce|merci|svp|stp|bordel|putain)(?: |$))|$)",
          CNIL + "; " + GDPR, "arrêtez de m'envoyer des SMS"),
    _rule("fr_arretez_les_messages", REVOCATION, "fr",
          B + r"(?:arret|arrete|arretez|arreter|arretes|stop|stoppez|stopper|stoppe|cessez|fini|finis|finies|"
              r"terminez|suspendez|annulez|annuler|supprimez|bloquez|coupez|marre|assez|ras le bol|y en a marre|"
              r"j en ai marre|j en ai assez|trop c est trop|halte) (?:(?:" + FR_DETERMINER + r"|a|aux|au|"
              r"avec|avec vos|avec les|avec ces|de recevoir|de recevoir vos|de recevoir des|de recevoir ces|"
              r"tout|toutes|tous|l envoi|l envoi de|l envoi des|les envois de|envoi) ){0,3}"
              r"(?:" + FR_MEDIUM + r"|abonnement|abonnements|inscription|envoi|envois)" + FR_AFTER,
          CNIL + "; " + GDPR, "stop aux pubs !"),
    _rule("fr_je_ne_veux_plus", REVOCATION, "fr",
          B + r"(?:je|j|nous|on|moi je) (?:ne |n )(?:veux|veut|voulons|souhaite|souhaitons|desire|desirons|"
              r"voudrais|voudrions|souhaiterais|souhaiterions|desirerais|tiens|accepte|acceptons|supporte|"
              r"supportons) (?:vraiment |absolument )?plus"
              r"(?:(?: (?:rien|aucun|aucune|jamais|du tout|rien du tout))?" + FR_AFTER
              + r"| (?:rien |jamais |en )?(?:recevoir|etre (?:\w+ )?(?:contacte\w*|sollicite\w*|derange\w*|"
              r"harcele\w*|inscrit\w*|abonne\w*|dans|sur|importune\w*|relance\w*|appele\w*|informe\w*|spamme\w*)|"
              r"faire partie|figurer|entendre parler|avoir (?:de |d )?(?:vos |de vos |des )?(?:nouvelles|"
              r"messages?|sms)|rien recevoir|qu on me|que vous me|que vous m|qu on m|de vous|de votre part|"
              r"rien de vous|rien de votre part|" + FR_CONTACT_VERB + r")" + E
              + r"| (?:(?:" + FR_DETERMINER + r") ){0,3}(?:" + FR_MEDIUM + r")" + FR_AFTER + r")"
              + r"|" + B + r"(?:je|j|nous|on) (?:ne |n )?(?:veux|veut|voulons|souhaite|souhaitons|desire) "
              r"(?:plus|pas|plus jamais|pas de|aucun|aucune) (?:recevoir|etre contacte|etre contactee|etre "
              r"sollicite|etre sollicitee|etre harcele|etre harcelee)" + E,
          CNIL + "; " + GDPR, "je ne veux plus recevoir vos SMS"),
    _rule("fr_ne_m_envoyez_plus", REVOCATION, "fr",
          B + r"(?:ne|n) (?:" + FR_PRONOUN + r" |nous |me |m |moi )?(?:" + FR_CONTACT_VERB + r"|"
              r"contactez|ecrivez|envoyez|sollicitez|harcelez|appelez|spammez|derangez|relancez|textez|"
              r"envoyer|contacter|ecrire|solliciter|appeler|spammer|deranger|relancer|texter) "
              r"(?:(?:" + FR_PRONOUN + r") )?(?:plus|jamais|plus jamais|jamais plus|plus rien|rien|plus de|"
              r"plus aucun|plus aucune)" + E
              + r"|" + B + r"(?:ne plus|plus jamais|ne jamais|ne jamais plus) (?:" + FR_PRONOUN + r" |me |m |"
              r"nous |etre )?(?:" + FR_CONTACT_VERB + r"|recevoir|contacte|contactee|contactes|sollicite|"
              r"sollicitee|derange|derangee|harcele|harcelee|recontacte|recontactee|relance|relancee|"
              r"inscrit|inscrite|abonne|abonnee)" + E,
          CNIL + "; " + GDPR, "ne m'envoyez plus de SMS"),
    _rule("fr_plus_de_sms", REVOCATION, "fr",
          r"^(?:(?:" + FILLER + r"|non|non merci|alors|bon|stop|desormais|dorenavant|a l avenir) )*"
              r"(?:plus de|plus d|plus aucun|plus aucune|pas de|plus jamais de|plus jamais d|fini les|finis les|"
              r"assez de|basta les|stop les|stop a|stop au|stop aux|arret des|arret de|arret du|halte aux|"
              r"non aux|non a) (?:(?:" + FR_DETERMINER + r") ){0,2}"
              r"(?:sms|messages?|mess|msg|textos?|texto|mails?|e mails?|notifications?|notifs?|pubs?|publicites?|"
              r"publicite|spams?|sollicitations?|relances?|envois?|harcelement)"
              r"(?: (?:" + FILLER + r"|s il vous plait|svp|merci|de votre part|de vous|sur ce numero|"
              r"sur mon numero|sur ce portable|sur mon portable|pour moi|desormais|dorenavant|a l avenir|"
              r"publicitaires?|promotionnels?|commerciaux|commerciales?|intempestifs?|non sollicites?|"
              r"non desires?|inutiles?|a ce numero|de la part de|c est|c est bon|ok|d accord|compris|"
              r"au revoir|bonne journee|cordialement|bien a vous|\w+))*$",
          CNIL + "; " + GDPR, "plus de SMS svp"),
    _rule("fr_desabonner", REVOCATION, "fr",
          B + r"(?:desabonn\w*|desinscri\w*|desincri\w*|desinscrip\w*|desabon\w*|desabo|desaboner\w*|"
              r"desabonement|desabbon\w*|desaboonn\w*|dezabonn\w*|desinscrir\w*|desincrir\w*|desinsrci\w*|"
              r"me retirer de (?:la|votre|vos|cette|ces) (?:liste|listes|fichier|fichiers|base)|"
              r"ne plus faire partie|sortir de (?:la|votre|vos|cette|ces) (?:liste|listes|fichier|fichiers|base|"
              r"programme|listing))" + E,
          CNIL + "; " + GDPR, "désabonnez-moi s'il vous plaît"),
    _rule("fr_retirez_moi", REVOCATION, "fr",
          B + r"(?:retirez|retirer|retire|enlevez|enlever|enleve|supprimez|supprimer|supprime|effacez|effacer|"
              r"efface|rayez|rayer|raye|radiez|radier|sortez|sortir|oubliez|oublier|oublie|virez|virer|vire|"
              r"otez|oter|retranchez|excluez|exclure|eliminez|eliminer|degagez) "
              r"(?:moi|nous|mon numero|mon num|mon 06|mon 07|mon telephone|mon tel|mon portable|mon mobile|mon nom|"
              r"mes coordonnees|mes donnees|mes infos|mes informations|mon contact|mon adresse|ce numero|"
              r"ce num|le numero|ma ligne|mon compte de|mon inscription|mon abonnement|mon consentement|"
              r"mes donnees personnelles|toutes mes donnees|cette ligne|de votre|de vos|de la liste|de la base|"
              r"de ma liste|le contact|ma fiche|mon profil|ma personne)" + E
              + r"|" + B + r"(?:me|m|nous) (?:retirer|enlever|supprimer|rayer|radier|sortir|effacer|oter|exclure)"
              r" (?:de|des|du|d)" + E,
          CNIL + "; " + GDPR, "retirez-moi de votre liste"),
    _rule("fr_retrait_consentement", REVOCATION, "fr",
          B + r"(?:je |j |nous )?(?:retire|retirons|revoque|revoquons|annule|annulons|reprends|reprenons|"
              r"retracte|retractons|retirer|revoquer|annuler|reprendre|retrait|revocation|annulation|retrait de|"
              r"revocation de|annulation de|fin de|fin du|fin de mon|resiliation|resilier|resiliez|resilie|mettre "
              r"fin a|mets fin a|mettez fin a|je mets fin a) (?:mon |ma |mes |notre |nos |le |la |les |de mon |"
              r"de ma |du |l |votre |a mon |a ma |au |a l )?(?:consentement|consentements|accord|autorisation|"
              r"abonnement|abonnements|inscription|inscriptions|opt in|adhesion|souscription|participation)" + E
              + r"|" + B + r"(?:je m oppose|je m y oppose|nous nous opposons|opposition|droit d opposition|"
              r"j exerce mon droit|je refuse de recevoir|je refuse tout|je refuse les|je refuse vos|je refuse ces|"
              r"je refuse d etre|refus de recevoir)" + E,
          GDPR + "; " + CNIL, "je retire mon consentement"),
    _rule("fr_laissez_moi_tranquille", REVOCATION, "fr",
          B + r"(?:laissez moi tranquille|laisse moi tranquille|laissez nous tranquilles?|laissez moi en paix|"
              r"fichez moi la paix|fiche moi la paix|foutez moi la paix|fous moi la paix|foutez nous la paix|"
              r"lachez moi|lache moi|lachez moi la grappe|lache moi la grappe|oubliez moi|oublie moi|"
              r"oubliez mon numero|perdez mon numero|foutez le camp|degagez|allez vous faire|cassez vous|"
              r"barrez vous|j en ai marre de vous|j en ai marre de vos|ras le bol de vos|ras le bol de vous|"
              r"fini pour moi|c est fini pour moi|je ne suis plus interesse|je ne suis plus interessee|"
              r"plus interesse|plus interessee|ne suis plus client|ne suis plus cliente|je ne suis plus votre client|"
              r"je ne suis plus votre cliente)" + E,
          CNIL + "; " + GDPR, "laissez-moi tranquille"),
    _rule("fr_faux_numero", REVOCATION, "fr",
          B + r"(?:faux numero|faux num|mauvais numero|mauvais num|mauvaise personne|erreur de numero|"
              r"erreur de destinataire|pas le bon numero|pas le bon destinataire|pas la bonne personne|"
              r"ce n est pas mon numero|c est pas mon numero|ce numero n est pas|vous vous etes trompe|"
              r"vous vous trompez de|je ne me suis jamais inscrit|je ne me suis jamais inscrite|"
              r"je me suis jamais inscrit|je me suis jamais inscrite|jamais inscrit|jamais inscrite|"
              r"jamais donne mon accord|jamais donne mon consentement|jamais accepte|jamais consenti|"
              r"je n ai rien demande|j ai rien demande|je n ai jamais demande|j ai jamais demande|"
              r"je n ai jamais accepte|j ai jamais accepte|sans mon accord|sans mon consentement)" + E,
          NO_CONSENT, "faux numéro, je ne suis pas Julie"),
)

# --- may be a revocation: a person decides (applied at the deadline if nobody does) ----------

MAYBES: tuple[Rule, ...] = (
    _rule("en_stop_sending_something", MAYBE, "en",
          B + r"(?:stop|quit|cease|no more|don t|dont|do not) (?:(?:please|pls|just|u|you) )?"
              r"(?:sending|send|texting|messaging|showing|offering|pushing|telling|reminding|giving|"
              r"recommending|suggesting|advertising|promoting)" + E,
          FCC_PRESUMPTION, "stop sending me the red one, I want blue"),
    _rule("en_do_not_contact_me_when", MAYBE, "en",
          B + r"(?:don t|dont|do not|never|please don t|pls don t|please do not) (?:ever )?(?:text|txt|message|msg|"
              r"contact|call|send|email|spam) (?:me|us)" + E,
          FCC_PRESUMPTION, "don't text me at work"),
    _rule("en_frequency_complaint", MAYBE, "en",
          B + r"(?:too many|too much|so many|way too many|fewer|less|cut down on|cut back on|reduce (?:the )?"
              r"(?:number of )?|tone down|one a week|once a week|once a month|only once|only one|only (?:text|send|"
              r"message) me|text me less|why do you keep|why do u keep|why are you texting|why r u texting|"
              r"why do you text|why are you messaging|why do you keep sending|how did you get (?:my|this) "
              r"number|how did u get my number|where did you get (?:my|this) number|who gave you (?:my|this) "
              r"number|every day|everyday|every single day|daily texts|every hour|constantly|nonstop texts|"
              r"annoying|irritating|harassment|harrassment|harassing|this is spam|spam|spammer|spammers|scam|"
              r"reported|reporting you|report you|report this|block you|blocking you|blocking this|block this|"
              r"blocked|not interested|no interest|no thanks|no thank you|nah|enough|i m done|im done|i am done|"
              r"go away|shut up|sick of|tired of|fed up|over it|not anymore|no longer interested|i quit|"
              r"never again|not again|ugh|attorney|lawyer|lawsuit|sue|tcpa|fcc|do not disturb|dnd|"
              r"do not call|dnc|what is this|what s this|who is this|who dis|who are you|"
              r"stop it|just stop|stop already|why|seriously)" + E,
          FCC_PRESUMPTION, "why do you keep texting me"),
    _rule("en_stop_word_in_context", MAYBE, "en",
          B + r"(?:stop|stopall|stop all|quit|cancel|cancelled|canceled|unsubscribed|halt|end it|end this|end these|"
              r"end all|end my|end the)" + E,
          FCC_PRESUMPTION, "STOP the blue ones"),
    _rule("fr_arretez_de_m_envoyer_autre_chose", MAYBE, "fr",
          B + r"(?:arret|arrete|arretez|arreter|arretes|cessez|cesser|stop|stoppez|ne m envoyez plus|"
              r"ne m envoie plus|n envoyez plus|plus de|je ne veux plus|je veux plus)(?: (?:de |d )?"
              r"(?:m |me |nous )?(?:envoyer|envoyez|proposer|proposez|montrer|montrez|recommander|conseiller|"
              r"offrir|parler|rappeler|relancer))?" + E,
          FCC_PRESUMPTION, "arrêtez de m'envoyer les rouges, je veux les bleues"),
    _rule("fr_frequency_complaint", MAYBE, "fr",
          B + r"(?:trop de|beaucoup trop|bien trop|moins de|moins souvent|une fois par|seulement|uniquement|"
              r"pourquoi vous m|pourquoi m|pourquoi tu m|pourquoi ce|pourquoi ces|pourquoi je recois|"
              r"comment avez vous|comment vous avez|ou avez vous|qui vous a|tous les jours|chaque jour|"
              r"sans arret|a longueur de journee|tout le temps|constamment|harcelement|harceler|harcele|spam|"
              r"spams|spammer|arnaque|escroquerie|signale|signaler|je vais signaler|je signale|33700|bloquer|"
              r"bloque|je vous bloque|pas interesse|pas interessee|non merci|ca suffit|suffit|assez|marre|"
              r"ras le bol|j en ai marre|agacant|penible|insupportable|relou|saoulant|soulant|c est lourd|"
              r"la cnil|cnil|avocat|plainte|porter plainte|qui etes vous|c est qui|qui est ce|c est quoi|"
              r"pourquoi|je veux plus)" + E,
          FCC_PRESUMPTION + "; " + CNIL, "vous m'envoyez beaucoup trop de SMS"),
    _rule("fr_stop_word_in_context", MAYBE, "fr",
          B + r"(?:arret|arrete|arretez|arreter|arretes|stoppe|stoppez|stopper|cessez|annuler|annulez|"
              r"resilier|resiliez|fini|basta)" + E,
          FCC_PRESUMPTION + "; " + CNIL, "arrêtez ça avec les rouges"),
)

RULES: tuple[Rule, ...] = GUARDS + REVOCATIONS + MAYBES
RULES_BY_NAME: dict[str, Rule] = {rule.name: rule for rule in RULES}


def _blank_guarded(folded: str) -> tuple[str, Rule | None]:
    """The folded text with every guarded phrase replaced by a neutral word, and the first guard that matched."""
    first = None
    for rule in GUARDS:
        blanked = rule.regex.sub(" _ ", folded)
        if blanked != folded:
            first = first or rule
            folded = " ".join(blanked.split())
    return folded, first


def classify(text: str | None) -> Classification:
    """`revocation`, `maybe` or `none` for an inbound text, with the rule that decided."""
    if not isinstance(text, str):
        return Classification(NONE)
    folded = fold(text[:MAX_TEXT_LENGTH])
    if not folded:
        return Classification(NONE)
    remaining, guard = _blank_guarded(folded)
    for rule in REVOCATIONS:
        if rule.regex.search(remaining):
            return Classification(REVOCATION, rule)
    for rule in MAYBES:
        if rule.regex.search(remaining):
            return Classification(MAYBE, rule)
    return Classification(NONE, guard)


# --- the review deadline: 10 US business days ------------------------------------------------

# 47 CFR §64.1200(a)(10): honoured "within a reasonable time not to exceed ten business days of receipt".
REVIEW_BUSINESS_DAYS = 10
# Items this many business days or fewer from their deadline stand out as overdue.
REVIEW_DUE_SOON_BUSINESS_DAYS = 2
# US federal holidays (5 U.S.C. §6103, with the observed days), as the `holidays` package lists them.
_US_FEDERAL = holidays_lib.country_holidays("US")


def is_us_business_day(day: date) -> bool:
    """Monday to Friday, and not a US federal holiday (or the day one is observed)."""
    return day.weekday() < 5 and day not in _US_FEDERAL


def add_us_business_days(day: date, count: int) -> date:
    """The date `count` US business days after `day` (`day` itself is never counted)."""
    current, left = day, count
    while left > 0:
        current += timedelta(days=1)
        if is_us_business_day(current):
            left -= 1
    return current


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _shifted(received_at: datetime, zone_name: str | None, business_days: int) -> datetime:
    zone = _zone(zone_name)
    local = received_at.astimezone(zone)
    day = add_us_business_days(local.date(), business_days)
    return datetime.combine(day, time(local.hour, local.minute, local.second, local.microsecond), tzinfo=zone)


def review_deadline(received_at: datetime, zone_name: str | None = None) -> datetime:
    """When an unresolved review is applied: the same local time, 10 US business days after receipt.

    Counted on the dates of `zone_name` (the person's time zone): a text received on a Saturday,
    Sunday or holiday counts from the next business day.
    """
    return _shifted(received_at, zone_name, REVIEW_BUSINESS_DAYS)


def review_due_soon_at(received_at: datetime, zone_name: str | None = None) -> datetime:
    """From when an unresolved review stands out as overdue (2 business days before its deadline)."""
    return _shifted(received_at, zone_name, REVIEW_BUSINESS_DAYS - REVIEW_DUE_SOON_BUSINESS_DAYS)
