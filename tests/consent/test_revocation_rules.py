"""Revocation in other words (consent/revocation.py): real-world phrasings, English and French.

Each table is what people actually write in reply to promotional texts: clear revocations (applied
like a bare STOP), ambiguous ones (a person decides; applied at the deadline), and texts that must
not match. The rules are pure: no database.
"""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from consent import revocation
from consent.revocation import MAYBE, NONE, REVOCATION, classify

EN_REVOCATION = [
    "pls stop txting me",
    "please stop texting me",
    "Stop texting me!",
    "stop txting me plz",
    "STOP TEXTING ME",
    "stop messaging me",
    "Please stop messaging me.",
    "stop contacting me",
    "Stop contacting me please",
    "quit texting me",
    "Quit messaging me already",
    "stop spamming me",
    "stop spamming me with this crap",
    "Stop harassing me",
    "stop bothering me",
    "stop calling and texting me",
    "Can you please stop texting me",
    "could you stop texting me please",
    "i said stop texting me",
    "I asked you to stop messaging me",
    "stop sending me texts",
    "stop sending me these texts",
    "Please stop sending me messages",
    "stop sending me promos",
    "stop sending me your ads",
    "Stop sending these",
    "please stop sending",
    "stop sending me this stuff",
    "stop sending me all these messages",
    "no more texts",
    "No more texts please",
    "no more messages!!",
    "No more promos thanks",
    "no further messages",
    "no more spam",
    "stop the texts",
    "stop these messages",
    "Stop all messages",
    "stop sms",
    "STOP ALL TEXTS",
    "end these texts",
    "cancel texts",
    "cancel my subscription",
    "Cancel all messages please",
    "enough texts",
    "don't text me anymore",
    "dont text me anymore",
    "Do not text me again",
    "do not contact me",
    "Don't contact me again.",
    "never text me again",
    "please don't message me",
    "do not send me any more messages",
    "don't send me texts",
    "I don't want your texts",
    "I don't want these messages anymore",
    "i dont want any more texts",
    "I do not wish to receive these messages",
    "I no longer wish to receive texts",
    "i no longer want to receive these",
    "I don't want to be contacted",
    "We no longer want to receive your messages",
    "take me off your list",
    "Take me off your list please",
    "take me off the list",
    "remove me",
    "Remove me from your list",
    "remove me from this list",
    "please remove my number",
    "remove my number from your list",
    "delete my number",
    "delete me from your database",
    "take my number off your list",
    "get me off this list",
    "get me off your texting list",
    "Please take this number off",
    "lose my number",
    "unsubscribe me",
    "Unsubscribe me please",
    "please unsubscribe",
    "I want to unsubscribe",
    "how do I unsubscribe",
    "how do i unsubscribe from this?",
    "unsub pls",
    "unsuscribe",
    "opt me out",
    "I want to opt out",
    "please opt me out of these texts",
    "opt out please",
    "I would like to opt out",
    "I revoke my consent",
    "I revoke consent to receive texts",
    "withdraw my consent",
    "I am withdrawing my consent",
    "cancel my consent",
    "revoke",
    "Stop please",
    "please stop",
    "Stop!!!",
    "stop stop stop",
    "STOP NOW",
    "stop it",
    "just stop",
    "stop already",
    "ok stop",
    "stop thanks",
    "Stop. Thank you",
    "quit",
    "quit it",
    "end",
    "cancel",
    "cancel please",
    "cancel it all",
    "leave me alone",
    "Leave me alone!",
    "please leave me alone",
    "wrong number",
    "Wrong number, I'm not Dave",
    "you have the wrong number",
    "I never signed up for this",
    "i didn't sign up for this",
    "I never subscribed to this",
    "i did not agree to receive these texts",
    "not interested stop",
    "f off",
    "I'm done with your texts",
    "Stop texting me, I'm not interested",
    "stop texting this number",
    "stop texting my phone",
    "Stop. Texting. Me.",
    "Stop sending me msgs",
    "Hey can you stop sending me messages? thanks",
    "Please stop texting me, I have asked before",
    "I can't stop smiling but please stop texting me",
    "I want to stop receiving these",
    "I'd like to stop receiving texts",
    "i want these texts to stop",
    "Stop sending me the weekly deals",
    "remove",
    "pls no more msgs",
    "take me off ur list",
]

EN_MAYBE = [
    "stop sending me the red one, I want blue",
    "Stop sending me the red ones",
    "stop sending me shoes I want bags",
    "stop sending me coupons for kids clothes",
    "stop texting me about shoes",
    "stop texting me before 9am",
    "don't text me at work",
    "please don't text me on weekends",
    "stop the blue ones",
    "STOP the blue ones",
    "too many texts",
    "you send too many messages",
    "way too many texts this week",
    "why do you keep texting me",
    "how did you get my number",
    "who gave you my number?",
    "this is spam",
    "spam",
    "I'm reporting you",
    "I will block this number",
    "not interested",
    "no thanks",
    "enough",
    "I'm done",
    "go away",
    "sick of these",
    "fewer texts please",
    "only text me once a week",
    "once a month is enough",
    "i quit",
    "stop with the red stuff",
    "cancel the blue one",
    "annoying",
    "who is this?",
    "what is this",
    "I talked to my lawyer about the TCPA",
    "ugh",
    "seriously why",
    "stop it I want the sale on shoes",
    "Stop the deal on red shoes, I wanted blue",
]

EN_NONE = [
    "can't stop smiling, thanks!",
    "I can't stop laughing at this",
    "couldn't stop reading it",
    "will you stop by tomorrow?",
    "I'll stop by the store later",
    "can I stop in on Saturday?",
    "I'll stop at the shop after work",
    "we stopped by yesterday",
    "Don't stop, I love these deals!",
    "don't stop texting me, I love it",
    "never stop sending these lol",
    "keep them coming!",
    "I'm at the bus stop",
    "is this the last stop?",
    "one stop shop for everything",
    "what time does the sale end?",
    "when does the promo end",
    "till the end of the month?",
    "does it end today",
    "please cancel my order 1234",
    "I need to cancel my appointment",
    "can you cancel my reservation for Friday",
    "I quit my job so I can shop more",
    "quit smoking thanks to you",
    "this cream helped me stop the itching",
    "it made me stop worrying",
    "thanks!",
    "yes please",
    "love it",
    "what are your opening hours?",
    "Do you have this in blue?",
    "Can I get the 20% code again?",
    "Is the store open on Sunday?",
    "where is my order",
    "send me more please",
    "great deal, thanks",
    "👍",
    "ok",
    "I don't want to unsubscribe, I just changed my number",
    "I didn't mean to unsubscribe",
    "How much is shipping?",
    "can you text me the address",
    "please text me when it's back in stock",
    "Happy new year!",
    "See you at the weekend",
    "I'll be there in the end",
    "non-stop fun, thank you",
    "The end of the sale is tomorrow right?",
    "my package stopped moving",
    "it stopped working, can I return it?",
    "",
    "   ",
]

FR_REVOCATION = [
    "je ne veux plus recevoir vos SMS",
    "Je ne veux plus recevoir de SMS",
    "je ne veux plus recevoir de messages de votre part",
    "je ne veux plus de vos pubs",
    "Je ne veux plus de SMS",
    "je ne veux plus rien recevoir",
    "Je ne souhaite plus recevoir vos messages",
    "je ne souhaite plus être contacté",
    "Je ne souhaite plus être contactée par SMS",
    "nous ne souhaitons plus recevoir vos offres",
    "je ne désire plus recevoir de publicité",
    "je ne veux plus",
    "Je ne veux plus être sollicité",
    "je n'accepte plus vos SMS",
    "ne m'envoyez plus de SMS",
    "Ne m'envoyez plus de messages svp",
    "ne m'envoyez plus rien",
    "ne me contactez plus",
    "Ne me contactez plus jamais",
    "ne m'écrivez plus",
    "merci de ne plus m'envoyer de SMS",
    "merci de ne plus me contacter",
    "Merci de ne plus me solliciter",
    "je souhaite ne plus recevoir vos messages",
    "je souhaite arrêter de recevoir vos sms",
    "vous pouvez me retirer de la liste ?",
    "arrêtez de m'envoyer des SMS",
    "Arrêtez de m'envoyer des messages",
    "arretez de m'envoyer vos pubs",
    "arrêtez de m'écrire",
    "Arrêtez de me contacter svp",
    "arrête de m'envoyer des textos",
    "arrêtez de me harceler",
    "arretez de me spammer",
    "cessez de m'envoyer des SMS",
    "Cessez de me contacter",
    "merci d'arrêter de m'envoyer des SMS",
    "pouvez-vous arrêter de m'envoyer des messages",
    "vous pouvez arrêter de m'envoyer des pubs svp",
    "stop de m'envoyer des sms",
    "arrêtez de m'envoyer",
    "arrêtez les SMS",
    "Arrêtez les messages svp",
    "stop aux pubs !",
    "stop aux SMS",
    "stop pub",
    "stop les sms",
    "STOP SMS",
    "j'en ai marre de vos SMS",
    "fini les SMS",
    "plus de SMS svp",
    "Plus de SMS merci",
    "plus de messages",
    "plus de pub",
    "Plus de publicité s'il vous plaît",
    "pas de SMS svp",
    "Non merci, plus de SMS",
    "désabonnez-moi",
    "Désabonnez-moi s'il vous plaît",
    "desabonnez moi svp",
    "je veux me désabonner",
    "Je souhaite me désabonner",
    "comment me désabonner ?",
    "désinscrivez-moi",
    "je veux me désinscrire",
    "désinscription svp",
    "Desinscription",
    "désabonnement",
    "me désabonner de vos SMS",
    "retirez-moi de votre liste",
    "Retirez moi de votre liste svp",
    "retirez mon numéro",
    "supprimez mon numéro",
    "Supprimez mon numéro de votre fichier",
    "effacez mes coordonnées",
    "supprimez mes données",
    "enlevez-moi de votre liste",
    "rayez-moi de votre liste",
    "je veux être retiré de la liste",
    "merci de me retirer de votre liste",
    "merci de supprimer mon numéro",
    "je retire mon consentement",
    "Je retire mon consentement à recevoir des SMS",
    "retrait de mon consentement",
    "je révoque mon consentement",
    "j'annule mon abonnement",
    "annulez mon inscription",
    "je m'oppose à recevoir vos SMS",
    "j'exerce mon droit d'opposition",
    "je refuse de recevoir vos messages",
    "laissez-moi tranquille",
    "Laissez moi tranquille !",
    "foutez-moi la paix",
    "fichez-moi la paix avec vos SMS",
    "oubliez mon numéro",
    "faux numéro",
    "Faux numéro, je ne suis pas Julie",
    "mauvais numéro",
    "erreur de numéro",
    "vous vous êtes trompé de numéro",
    "je ne me suis jamais inscrit",
    "je n'ai jamais accepté de recevoir vos SMS",
    "je n'ai rien demandé",
    "qui vous a donné mon numéro ? arrêtez de m'envoyer des SMS",
    "stop merci",
    "Stop svp",
    "STOP STOP STOP",
    "arrêtez svp",
    "Arrêtez !",
    "arrêt svp",
    "arrêtez ça",
    "stop s'il vous plaît",
    "stp arrêtez",
    "arrêtez maintenant",
    "stop, merci",
    "Stop. Merci.",
    "fin",
    "annuler",
    "stop tout",
    "je ne suis plus intéressé",
    "Je ne suis plus cliente, merci de ne plus m'écrire",
    "je ne veux plus recevoir de promotions",
    "je veux plus recevoir vos sms",
    "ne plus m'envoyer de sms svp",
    "Ne plus me contacter",
    "plus jamais de SMS",
    "ne m'envoie plus de messages",
    "je ne veux plus faire partie de votre liste",
    "je ne veux plus figurer dans votre fichier",
    "arrête de m'envoyer tes pubs",
    "Pourriez-vous arrêter de m'envoyer des SMS ?",
    "je n'arrête pas de rire mais arrêtez de m'envoyer des SMS",
]

FR_MAYBE = [
    "arrêtez de m'envoyer les rouges, je veux les bleues",
    "arrêtez de m'envoyer les chaussures",
    "stop les rouges",
    "arrêtez avec les promos sur les chaussures",
    "vous m'envoyez beaucoup trop de SMS",
    "trop de messages",
    "beaucoup trop de pubs",
    "moins de messages svp",
    "un SMS par semaine suffit",
    "pourquoi vous m'envoyez ça ?",
    "comment avez-vous eu mon numéro ?",
    "c'est du harcèlement",
    "spam",
    "je vais vous signaler",
    "je vais bloquer ce numéro",
    "pas intéressé",
    "non merci",
    "ça suffit",
    "j'en ai marre",
    "c'est quoi ce truc",
    "qui êtes-vous ?",
    "je veux plus de promos",
    "je vais porter plainte à la CNIL",
    "arrêtez ça avec les rouges",
    "c'est pénible",
    "tous les jours un SMS, c'est lourd",
    "ras le bol",
    "pourquoi ?",
    "arrêtez de me proposer des chaussures",
    "je ne veux plus les rouges",
    "résilier",
    "stop les promos chaussures, je veux les sacs",
    "annulez les bleus",
    "seulement les offres sur les sacs svp",
    "uniquement le week-end svp",
    "Je veux plus de vos SMS",
]

FR_NONE = [
    "arrête pas, c'est super",
    "n'arrêtez pas, j'adore",
    "N'arrêtez surtout pas !",
    "ne vous arrêtez pas, c'est génial",
    "n'arrête jamais",
    "je n'arrête pas de rire",
    "j'arrête pas de sourire",
    "je ne veux pas me désabonner",
    "surtout ne pas me désabonner",
    "ne me désabonnez pas",
    "continuez comme ça !",
    "continuez à m'envoyer vos offres",
    "je suis à l'arrêt de bus",
    "prochain arrêt : la boutique",
    "il pleut sans arrêt ici",
    "je suis en arrêt maladie, je passerai plus tard",
    "j'arrête de fumer grâce à vous",
    "je m'arrête chez vous demain",
    "je m'arrête au magasin en rentrant",
    "annuler ma commande 1234",
    "je voudrais annuler mon rendez-vous",
    "pouvez-vous annuler ma réservation ?",
    "merci !",
    "oui",
    "super offre, merci",
    "à quelle heure ouvrez-vous ?",
    "vous l'avez en bleu ?",
    "où est ma commande ?",
    "envoyez-moi le code promo",
    "j'adore vos messages",
    "bonne journée",
    "c'est stop ou encore ?",
    "ok",
    "quand se termine la promo ?",
    "c'est la fin des soldes ?",
    "vous êtes ouverts dimanche ?",
    "j'ai reçu le colis, merci",
    "bonjour, je cherche une taille 38",
    "je passe demain",
    "trop bien !",
    "😍",
    "combien coûte la livraison ?",
    "je veux plus d'infos sur la promo",
    "j'ai arrêté de chercher, c'est parfait",
    "le bouton arrêt ne marche pas sur mon appareil",
    "je veux plus de choix de tailles",
]


def _ids(texts):
    return [text[:40] or "<empty>" for text in texts]


@pytest.mark.parametrize("text", EN_REVOCATION + FR_REVOCATION, ids=_ids(EN_REVOCATION + FR_REVOCATION))
def test_clear_revocations(text):
    result = classify(text)
    assert result.kind == REVOCATION, f"{text!r} -> {result.kind} ({result.rule_name})"
    assert result.rule is not None and result.rule.source


@pytest.mark.parametrize("text", EN_MAYBE + FR_MAYBE, ids=_ids(EN_MAYBE + FR_MAYBE))
def test_ambiguous_texts_go_to_review(text):
    result = classify(text)
    assert result.kind == MAYBE, f"{text!r} -> {result.kind} ({result.rule_name})"


@pytest.mark.parametrize("text", EN_NONE + FR_NONE, ids=_ids(EN_NONE + FR_NONE))
def test_texts_that_must_not_match(text):
    result = classify(text)
    assert result.kind == NONE, f"{text!r} -> {result.kind} ({result.rule_name})"


def test_at_least_150_phrasings_per_language():
    assert len(EN_REVOCATION) + len(EN_MAYBE) + len(EN_NONE) >= 150
    assert len(FR_REVOCATION) + len(FR_MAYBE) + len(FR_NONE) >= 150
    for table in (EN_REVOCATION, EN_MAYBE, EN_NONE, FR_REVOCATION, FR_MAYBE, FR_NONE):
        assert len(table) == len(set(table)), "a phrasing is listed twice"


def test_the_issue_examples():
    assert classify("pls stop txting me").kind == REVOCATION
    assert classify("take me off your list").kind == REVOCATION
    assert classify("je ne veux plus recevoir vos SMS").kind == REVOCATION
    assert classify("stop sending me the red one, I want blue").kind == MAYBE
    assert classify("can't stop smiling, thanks!").kind == NONE
    assert classify("will you stop by tomorrow?").kind == NONE
    assert classify("arrête pas, c'est super").kind == NONE


def test_folding_is_the_keyword_folding():
    """Case, accents, full-width letters and punctuation do not change the answer."""
    assert classify("ＰＬＥＡＳＥ STOP TEXTING ME!!!").rule_name == classify("please stop texting me").rule_name
    assert classify("DÉSABONNEZ-MOI").kind == classify("desabonnez moi").kind == REVOCATION


def test_a_guard_is_named_when_it_explains_the_stop_word():
    assert classify("will you stop by tomorrow?").rule_name == "en_stop_by"
    assert classify("hello").rule is None


def test_every_rule_is_named_once_with_its_source_and_its_own_example():
    names = [rule.name for rule in revocation.RULES]
    assert len(names) == len(set(names))
    for rule in revocation.RULES:
        assert rule.source and rule.example and rule.language in {"en", "fr", "any"}
        if rule.kind == revocation.GUARD:
            assert classify(rule.example).kind == NONE, rule.name
        else:
            assert classify(rule.example).kind == rule.kind, rule.name


@pytest.mark.parametrize("value", [None, 12, b"stop", "x" * 100_000, "\u200b" * 50, "stop " * 5000])
def test_odd_input_never_raises(value):
    assert classify(value).kind in {REVOCATION, MAYBE, NONE}


# --- the review deadline --------------------------------------------------------------------

NY = ZoneInfo("America/New_York")


def at(year, month, day, hour=10):
    return datetime(year, month, day, hour, 0, tzinfo=NY)


@pytest.mark.parametrize("received, deadline", [
    (at(2025, 6, 2), at(2025, 6, 16)),      # Monday; two weekends skipped (Juneteenth comes after)
    (at(2025, 6, 9), at(2025, 6, 24)),      # Monday; skips Juneteenth and two weekends
    (at(2025, 6, 14), at(2025, 6, 30)),     # Saturday: counting starts on Monday, skips Juneteenth
    (at(2025, 11, 20), at(2025, 12, 5)),    # Thursday; skips Thanksgiving (Nov 27)
    (at(2025, 12, 22), at(2026, 1, 7)),     # Monday; skips Christmas and New Year's Day
    (at(2026, 6, 29), at(2026, 7, 14)),     # Monday; skips Independence Day observed (Fri Jul 3)
    (at(2025, 1, 13), at(2025, 1, 28)),     # Monday; skips Martin Luther King Jr. Day (Jan 20)
])
def test_deadline_is_ten_us_business_days(received, deadline):
    assert revocation.review_deadline(received, "America/New_York") == deadline


def test_deadline_keeps_the_local_time_across_a_dst_change():
    received = datetime(2025, 10, 27, 9, 30, tzinfo=NY)  # EDT; the deadline is in EST
    deadline = revocation.review_deadline(received, "America/New_York")
    assert (deadline.hour, deadline.minute) == (9, 30)
    assert deadline.utcoffset() != received.utcoffset()


def test_due_soon_is_two_business_days_before_the_deadline():
    received = at(2025, 6, 2)
    assert revocation.review_due_soon_at(received, "America/New_York") == at(2025, 6, 12)


def test_an_unknown_zone_counts_in_utc():
    received = datetime(2025, 6, 2, 10, tzinfo=ZoneInfo("UTC"))
    assert revocation.review_deadline(received, "Not/AZone") == datetime(2025, 6, 16, 10, tzinfo=ZoneInfo("UTC"))


def test_business_days():
    assert revocation.is_us_business_day(datetime(2025, 7, 3).date())
    assert not revocation.is_us_business_day(datetime(2025, 7, 4).date())  # Independence Day
    assert not revocation.is_us_business_day(datetime(2025, 7, 5).date())  # Saturday
    assert not revocation.is_us_business_day(datetime(2025, 11, 11).date())  # Veterans Day
