#!/usr/bin/env python3
"""Generate tests/data/recall/conversations.json, a held-in recall evaluation set.

What it is: twelve synthetic chat histories between two people (one "user" each,
about 440 turns in 30-40 sessions spread over January to September 2026). Every
turn is one memory. Most turns are small talk; the rest are facts about the
speakers' lives. Questions ask for one fact and name the turn that answers it:

  exact       the question holds a rare token (an unusual name, a flat number, a
              price, a flight or booking code) found in the answer turn and in no
              other turn of that user, while several other turns follow the same
              template with other tokens, so meaning alone cannot pick the answer;
  paraphrase  after lowercasing, dropping punctuation, speaker names and stop
              words and crude stemming, question and answer share no word;
  mixed       they share some words but not all of the question's;
  stale=true  the answer is in the user's first third of sessions and at least
              three later turns talk about the same topic without answering.

All text (templates, names, fillers) was written for this project; nothing is
taken from public text. Licence: Apache-2.0, like the rest of the repository.

Format (one JSON object):
  {"about": str, "seed": int,
   "users": [{"user_id": "u01", "speakers": [name, name],
              "memories": [{"key": "u01-s03-t07", "session": "u01-s03",
                            "speaker": name, "text": "Name: ...",
                            "created_at": "2026-02-14T18:04:00Z"}, ...]}],
   "questions": [{"user_id", "question", "answers": [key], "kind", "stale"}]}
Memories are in chronological order per user. The output depends only on SEED:
run `python3 tests/data/recall/generate.py` and it is rewritten byte for byte.
"""

import json
import os
import random
import re
import string
from datetime import datetime, timedelta

SEED = 1234
N_USERS = 12
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "conversations.json")

# A standard English stop-word list (NLTK's, plus a few modal verbs).
STOP_WORDS = frozenset("""
a about above after again against all am an and any are aren as at be because been before
being below between both but by can couldn d did didn do does doesn doing don down during each
few for from further had hadn has hasn have haven having he her here hers herself him himself
his how i if in into is isn it its itself just ll m ma me mightn more most mustn my myself
needn no nor not now o of off on once only or other our ours ourselves out over own re s same
shan she should shouldn so some such t than that the their theirs them themselves then there
these they this those through to too under until up ve very was wasn we were weren what when
where which while who whom why will with won wouldn y you your yours yourself yourselves
would could may might must shall also yet us let
""".split())


def stem(word):
    for suffix in ("ing", "ed", "es", "ly", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def content_words(text, names):
    words = re.findall(r"[a-z0-9]+", text.lower())
    return {stem(w) for w in words if w not in STOP_WORDS and w not in names}


# --- names ------------------------------------------------------------------------
SPEAKERS = """Maya Jonas Aiko Kwame Priya Mateo Leila Sven Nadia Tomasz Amara Hiroshi Ingrid
Rafael Zainab Oskar Mei Dmitri Fatima Lars Chiara Kofi Ananya Emeka Sofia Arjun Yara Bjorn
Thandiwe Luca Noor Joaquin Hana Tariq Elif Pablo Siobhan Ravi Ayesha Kenji Olga Malik Ines
Farid Keoni Marisol Wanjiru Anouk""".split()
FEMALE_NAMES = """Clara Lucy Anna Rosa Sara Nina Elena Julia Lena Grace Eva Alice Zara Mia Laila
Ruth Hannah Isla Freya Lotte""".split()
MALE_NAMES = """Tom Ben Omar Leo Ivan Kai Felix Sami Marco Ahmed Daniel Hugo Max Adam Jakub Theo
Yusuf Diego Ollie Karim""".split()
RARE_GIVEN = """Ilsabet Tarquin Ottoline Ysolde Faramund Quirina Leocadia Evander Ignatia
Peregrine Thaddeus Zenobia Casimir Wendeline Aurelio Benedikta Cosima Dagobert Eulalia
Florentin Gwenllian Hyacinth Isidora Jolanthe Kasimira Lysander Melisande Nepomuk Odalys
Perpetua Radomir Seraphina Tiberius Valdis Wolfram Xanthe Yevgenia Zebedee Anselm Brunhilde
Cyprian Desdemona Eberhard Fenella Gottfried Honoria Jessamy Kunigunde Leopoldine Mirabel
Norberta Orsolya Pancrazio Romilly Sigismund""".split()
RARE_SURNAMES = """Vantongeren Quennell Achterberg Szymborowski Oyelaran Bexendale Castellucci
Drummelow Eskildsen Farquharson Grieshaber Hollingdrake Ilmarinen Jaskolski Kettlewell
Marchbanks Oosterhuis Pettigrew Quarrington Rautenbach Sauerwein Tregothnan Ubertini
Yarborough Zwickmann Birkenshaw Etxeberria Haverkamp Inglethorpe Jovanovski Lanigan
Montgomerie Ostrowski Pendleberry Rosenquist Stavropoulos Thistlewood Wachowiak""".split()
RARE_PETS = """Bartleby Quimby Pumpernickel Figaro Mortimer Snickerdoodle Bramwell Fandango
Gherkin Horatio Jellybean Kumquat Marmaduke Obadiah Pistachio Rigatoni Sprocket Tapioca
Umberto Vermicelli Wigglesworth Xerxes Lollipop Ravioli Bojangles""".split()
RARE_RESTAURANTS = """Bramblewick Oleandro Lemongrove Vellutino Saffronia Marigolda Quillhouse
Tinderbox Ottavio Copperpot Fennimore Juniperro Wrenfield Hollyhock Cobaltine Amberlume
Velveteen Kestrelle Orchidea Mossbank Nettlebed Thimbleby""".split()

# --- slot fillers -------------------------------------------------------------------
SLOTS = {
    "breed": ["beagle", "dachshund", "whippet", "border collie", "spaniel", "labrador", "terrier"],
    "job2": ["bus driver", "postman", "firefighter", "carpenter", "ship engineer", "maths teacher"],
    "allergen": ["peanuts", "shellfish", "sesame", "kiwi", "hazelnuts", "celery", "mustard"],
    "country": ["Portugal", "Japan", "Iceland", "Morocco", "Chile", "Vietnam", "Greece", "Norway"],
    "age": ["80", "85", "88", "90", "92", "95"],
    "shift": ["night", "early", "weekend", "twelve-hour"],
    "nth": ["second", "third", "fourth", "fifth", "sixth"],
    "colour": ["sage green", "dark blue", "terracotta", "mustard yellow", "off-white", "charcoal grey"],
    "transit": ["tram", "ferry", "train", "metro", "night bus"],
    "drink": ["coffee", "cola", "black tea", "espresso", "fizzy pop"],
    "pct": ["five", "eight", "ten", "twelve", "fifteen"],
    "knit": ["scarf", "hat", "jumper", "pair of mittens", "blanket"],
    "ndays": ["two", "three", "four", "five", "six"],
    "beach": ["Crete", "Cornwall", "Sardinia", "the Algarve", "Bali", "Brittany"],
    "person": ["Marie Curie", "Frida Kahlo", "Ada Lovelace", "Alan Turing", "Mary Seacole",
               "Ernest Shackleton", "Hokusai"],
    "bone": ["wrist", "ankle", "collarbone", "little finger", "elbow"],
    "film": ["Spirited Away", "Casablanca", "Paddington", "The Third Man", "Jaws", "Moonlight",
             "Alien", "Amadeus", "Chinatown"],
    "year": [str(y) for y in range(2008, 2020)],
    "noise_instr": ["trumpet", "drum kit", "bagpipes", "electric guitar", "tuba", "accordion"],
    "tree": ["apple", "cherry", "walnut", "plum", "fig", "pear"],
    "title": ["team lead", "head of design", "senior editor", "operations manager", "deputy head",
              "principal engineer"],
    "city": ["Lisbon", "Glasgow", "Krakow", "Montreal", "Nairobi", "Seoul", "Valencia", "Tallinn",
             "Bergen", "Porto", "Leipzig", "Bologna", "Cork", "Lyon", "Osaka", "Hobart", "Ghent",
             "Antwerp", "Quito", "Tbilisi"],
    "kilos": ["two", "three", "four"],
    "surgery": ["knee", "hip", "cataract", "heart bypass", "shoulder", "hernia"],
    "subject": ["pottery", "Mandarin", "bookkeeping", "welding", "life drawing", "upholstery",
                "sign language"],
    "dream": ["vet", "pilot", "astronaut", "firefighter", "marine biologist", "zookeeper",
              "palaeontologist"],
    "lost_place": ["tram", "night train", "ferry", "airport bus", "football stadium"],
    "guests": ["twelve", "fifteen", "twenty", "thirty", "forty"],
    "loan_years": ["eight", "ten", "twelve", "fifteen"],
    "sport": ["water polo", "squash", "badminton", "ultimate frisbee", "five-a-side football",
              "table tennis", "volleyball"],
    "heirloom": ["typewriter", "accordion", "pocket watch", "sailing dinghy", "record collection",
                 "chess set", "fountain pen"],
    "trigger": ["skip lunch", "stare at screens too long", "drink red wine",
                "sleep less than six hours", "get dehydrated"],
    "volunteer": ["food bank", "animal rescue", "charity shop", "repair cafe", "community fridge"],
    "surface": ["bathroom tiles", "pavement", "stone stairs", "station platform", "kitchen floor"],
    "goal": ["piano", "camper van", "new roof", "sailing course", "hot tub", "trip to Japan"],
    "supp": ["iron", "vitamin D", "magnesium", "B12", "folic acid"],
    "region": ["Galway", "Silesia", "Brittany", "Tuscany", "Punjab", "Alentejo", "Anatolia",
               "Jutland"],
    "dye": ["pink", "grey", "pale blue", "lilac", "streaky green"],
    "present": ["drum kit", "bass guitar", "keyboard", "saxophone", "DJ deck", "ukulele"],
    "cause": ["we moved house", "my dad got ill", "the new job started",
              "the builders started next door", "my promotion"],
    "venue": ["barn", "lighthouse", "watermill", "railway station", "castle ruin", "monastery"],
    "town": ["Whitby", "Ronda", "Hallstatt", "Dinan", "Kinsale", "Sintra"],
    "bad_food": ["oyster", "prawn", "mussel", "chicken kebab", "clam"],
    "hamster": ["Mochi", "Pickle", "Biscuit", "Tofu", "Olive", "Ziggy", "Nugget"],
    "fear": ["spiders", "wasps", "geese", "moths", "pigeons", "jellyfish"],
    "meet": ["roller disco", "ferry to Dublin", "student protest", "wedding in Lagos",
             "chess club", "bus stop"],
    "hens": ["four", "five", "six", "seven", "eight"],
    "former": ["dancer", "cyclist", "footballer", "gymnast", "rower", "jockey"],
    "team_sport": ["rugby", "cricket", "hockey", "netball", "basketball"],
    "creative": ["novel", "screenplay", "thesis", "podcast", "comic book"],
    "sail_region": ["the Greek islands", "the Baltic", "the Canaries", "Scotland's west coast"],
    "smoke_years": ["ten", "fifteen", "twenty", "twenty-five"],
    "job": ["paramedic", "sound engineer", "primary teacher", "pharmacist", "tram driver",
            "florist", "lab technician", "court interpreter"],
    "catname": ["Pepper", "Smudge", "Luna", "Tigger", "Socks", "Misty"],
    "cat_age": ["nine", "eleven", "twelve", "fourteen", "sixteen"],
    "swim_dist": ["two-mile", "five-kilometre", "one-mile", "ten-kilometre"],
    "company_type": ["design studio", "bank", "startup", "law firm", "logistics firm"],
    "company": ["Brightwell", "Northlight", "Kestrel", "Bluefin", "Larchmont", "Harbourside"],
    "cuisine": ["Ethiopian", "Sichuan", "Lebanese", "Peruvian", "Georgian", "Sri Lankan",
                "Vietnamese", "Oaxacan"],
    "tile": ["green zellige", "black-and-white", "terrazzo", "hand-painted Portuguese",
             "plain white metro"],
    "yoga_time": ["six", "half six", "seven", "quarter to seven"],
    "weekday": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"],
    "nweeks": ["three", "four", "six", "eight"],
    "ncav": ["two", "three", "four"],
    "ordinal": ["3rd", "7th", "12th", "19th", "23rd", "28th", "9th", "15th"],
    "cottage": ["Cornwall", "the Dolomites", "the Ardennes", "Connemara", "the Black Forest"],
    "sport2": ["netball", "tennis", "basketball", "hockey", "padel"],
    "veg": ["chillies", "tomatoes", "strawberries", "runner beans", "lettuce"],
    "field": ["marine biology", "law", "architecture", "nursing", "economics"],
    "band": ["the Velvet Hours", "Moon Harbour", "Saltwater Choir", "Northern Static",
             "the Paper Lanterns"],
    "role": ["wolf", "narrator", "queen", "talking tree", "ghost"],
    "cuisine2": ["Korean", "Ethiopian", "Persian", "Thai", "Mexican"],
    "cert": ["scuba diving", "first aid", "forklift", "sommelier", "lifeguard"],
    "steps": ["eight", "ten", "twelve", "fifteen"],
    "museum": ["natural history", "transport", "science", "toy", "maritime"],
    "bp": ["a bit high", "perfectly normal", "on the low side"],
    "halfterm": ["the Lake District", "Disneyland", "my parents' farm", "Copenhagen"],
    "bike": ["folding", "cargo", "electric", "gravel", "second-hand racing"],
    "grand_job": ["lighthouse keeper", "coal miner", "ship's cook", "postman", "tailor"],
    "trip_kind": ["walking holiday", "cooking course", "yoga retreat", "cycling tour"],
    # exact families
    "relation": ["cousin", "colleague", "old schoolfriend", "former flatmate", "pen pal",
                 "university friend", "old neighbour"],
    "when": ["on Friday", "next month", "this weekend", "on Tuesday night", "in a fortnight",
             "tomorrow morning"],
    "clock": ["6:10", "6:45", "7:20", "8:05", "9:40", "11:55", "13:25", "14:50", "17:35", "21:45"],
    "noise": ["washing machine at night", "bikes in the hallway", "music on Sundays",
              "barbecue smoke", "squeaky floorboards", "recycling bins", "dripping balcony plants"],
    "role2": ["data analyst", "office manager", "UX designer", "junior accountant", "QA tester",
              "HR partner", "project coordinator"],
    "purchase": ["laptop", "washing machine", "dining table", "espresso machine", "camera lens",
                 "mattress", "tent", "telescope"],
    "lodging": ["guesthouse", "hostel", "cabin", "hotel", "farm stay", "apartment"],
    "specialist": ["dermatologist", "cardiologist", "ENT specialist", "rheumatologist",
                   "neurologist", "allergist"],
    "animal": ["tortoise", "parrot", "ferret", "iguana", "rabbit", "goat", "guinea pig", "pony"],
    "landmark": ["river", "cathedral", "old market", "train station", "harbour", "university"],
    "kb_place": ["my parents' house", "the holiday flat", "the office bike store",
                 "my gran's cottage", "the rehearsal room", "the boat club", "the community hall"],
    "subject2": ["a lighthouse keeper", "two sisters in Lagos", "a missing violin",
                 "a chess prodigy", "a family bakery", "a time-travelling librarian"],
    # stale topics and echoes
    "instr": ["cello", "violin", "viola", "double bass", "harp", "mandolin"],
    "car_colour": ["red", "silver", "dark green", "white", "navy"],
    "car_model": ["Skoda estate", "Toyota Yaris", "Volvo estate", "Fiat Panda", "Honda Jazz"],
    "crop": ["broad beans", "garlic", "potatoes", "onions", "rhubarb", "courgettes"],
    "muscle": ["glutes", "hamstrings", "hip muscles", "quads", "calves"],
    "giver": ["neighbour", "aunt", "colleague", "old landlady", "best friend's mum"],
    "venue2": ["the Lantern cafe", "the library basement", "a wine bar on Mill Street",
               "the back room of the Fox pub", "the bakery on Church Lane"],
    "pup": ["Pip", "Alfie", "Juno", "Rufus", "Mabel", "Otis"],
    "namesake": ["grandad", "great-aunt", "old headmaster", "childhood best friend"],
    "gym": ["the Crux", "Rockhaus", "Blocwerk", "the Overhang", "Chalkpit"],
    "street": ["Larkspur Lane", "Canal Road", "Quarry Hill", "Orchard Row", "Baker Terrace"],
    "excl": ["ugh", "typical", "so annoying", "of course", "classic"],
    "body": ["fingers", "shoulders", "wrists", "neck"],
    "event": ["the spring concert", "my grade exam", "the summer recital", "our open evening"],
    "dur": ["an hour", "forty minutes", "half an hour", "twenty minutes"],
    "cost_phrase": ["cost a fortune as usual", "cheaper than I feared", "they found nothing wrong",
                    "needs new tyres apparently"],
    "brace_adj": ["ugly", "itchy", "tight", "beige"],
    "route_colour": ["purple", "yellow", "black", "orange", "pink"],
    "rel_any": ["mum", "neighbour", "colleague", "sister-in-law"],
    # background facts
    "doc": ["octopuses", "deep sea mining", "medieval castles", "bees", "glaciers", "the Silk Road"],
    "fence": ["green", "grey", "dark brown", "white"],
    "furniture": ["kitchen chair", "bookshelf", "desk", "bed frame"],
    "dish": ["lentil soup", "a mushroom risotto", "fish tacos", "dumplings", "a tagine",
             "shakshuka"],
    "room": ["loft", "garage", "spare room", "hallway cupboard"],
    "event2": ["food festival", "open-air cinema", "kite festival", "brass band concert"],
    "pod": ["forgotten inventors", "old shipwrecks", "space", "urban planning", "weird laws"],
    "relative": ["aunt", "grandma", "godmother", "cousin"],
    "gift": ["homemade jam", "old photos", "hand-knitted socks", "spices"],
    "shop": ["pharmacy", "library", "bakery", "post office"],
    "game": ["board games", "cards", "charades", "a murder mystery game"],
    "issue": ["bus cuts", "park closure", "new car park", "library hours"],
    "appliance": ["dishwasher", "tumble dryer", "kettle", "toaster", "hoover"],
    "afternoon": ["sorting old photos", "repotting plants", "baking biscuits",
                  "fixing a bike puncture"],
    "new_food": ["durian", "natto", "jackfruit", "okra", "kimchi", "sea urchin"],
    "delay": ["roadworks", "the school run", "train strikes", "a broken lift at work"],
}
# Slots whose value follows from another slot of the same fact.
PAIRED = {"complaint": ("specialist", {
    "dermatologist": "rash", "cardiologist": "palpitations", "ENT specialist": "blocked ear",
    "rheumatologist": "stiff fingers", "neurologist": "tingling hands", "allergist": "hay fever"})}
LANGUAGES = [("Portuguese", "Brazil"), ("Turkish", "Izmir"), ("Korean", "Busan"),
             ("Italian", "Sicily"), ("Swahili", "Tanzania"), ("Finnish", "Lapland"),
             ("Tagalog", "Manila")]
CURRENCIES = ["euros", "pounds", "dollars", "francs", "kroner", "zloty"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]

# --- paraphrase pairs: (fact, questions, answer slot); no shared content word --------
PARAPHRASE = [
    ("I finally adopted a {breed} puppy from the shelter.",
     ["What kind of dog did {spk} get?", "Which breed is {spk}'s new pet?"], "breed"),
    ("My dad just retired after thirty years as a {job2}.",
     ["What did {spk}'s father do for a living?", "What was {spk}'s father's line of work?"], "job2"),
    ("I'm allergic to {allergen}, even a tiny bit makes my throat swell.",
     ["Which food must {spk} avoid for medical reasons?", "What can't {spk} eat safely?"], "allergen"),
    ("For our tenth anniversary we're going to {country}.",
     ["Where is {spk} headed to celebrate ten years of marriage?"], "country", "married"),
    ("My grandmother turns {age} next month and we're throwing a party.",
     ["How old will {spk}'s gran be?"], "age"),
    ("I've been on {shift} shifts at the hospital since {past_month}.",
     ["What's {spk}'s current work schedule like?"], "shift"),
    ("I passed my driving test on the {nth} attempt.",
     ["How many tries did it take {spk} to get a licence?"], "nth"),
    ("We're repainting the living room {colour}.",
     ["What shade will {spk}'s lounge walls be?", "Which colour scheme did {spk} pick for the lounge?"],
     "colour"),
    ("My commute is forty minutes each way on the {transit}.",
     ["How does {spk} travel to the office?", "What transport does {spk} take to work?"], "transit"),
    ("I gave up {drink} three weeks ago and I'm so grumpy.",
     ["Which drink has {spk} stopped having?"], "drink"),
    ("My landlord is raising the rent by {pct} percent in {future_month}.",
     ["How much more will {spk} pay for housing?",
      "What increase is coming on {spk}'s accommodation costs?"], "pct"),
    ("I've been learning to knit and made a {knit} for my nephew.",
     ["What handmade gift did {spk} create for a relative?"], "knit"),
    ("Our boiler broke and we had no hot water for {ndays} days.",
     ["How long was {spk}'s home without a warm shower?"], "ndays"),
    ("My partner proposed on a beach in {beach}.",
     ["Where did {spk} get engaged?"], "beach", "engaged"),
    ("I'm reading a biography of {person} at the moment.",
     ["Whose life story is {spk} currently into?", "Which famous figure is {spk} studying in a book?"],
     "person"),
    ("I broke my {bone} falling off a ladder.",
     ["What did {spk} fracture?", "Which part of {spk}'s body got injured at home?"], "bone"),
    ("My favourite film of all time is {film}.",
     ["Which movie does {spk} love most?"], "film"),
    ("I've been vegetarian since {year}.",
     ["How long has {spk} avoided meat?"], "year"),
    ("My neighbour practises the {noise_instr} every night at eleven.",
     ["What noisy music does {spk} hear through the wall?"], "noise_instr"),
    ("We planted a little {tree} tree in the back yard for my dad's seventieth.",
     ["What did {spk} put in the garden to mark a parent's big birthday?"], "tree"),
    ("I got promoted to {title} last week.",
     ["What's {spk}'s position after moving up at work?"], "title"),
    ("My flatmate is moving to {city} for her PhD.",
     ["Where is {spk}'s housemate relocating for doctoral studies?"], "city"),
    ("The vet said our cat needs to lose {kilos} kilos.",
     ["How much weight should {spk}'s pet shed?"], "kilos"),
    ("My dad is recovering from {surgery} surgery.",
     ["What operation did {spk}'s father have?"], "surgery"),
    ("I signed up for evening classes in {subject}.",
     ["What is {spk} studying at night school?"], "subject"),
    ("Our daughter wants to be a {dream} when she grows up.",
     ["What career does {spk}'s girl dream of?"], "dream"),
    ("I lost my wallet on the {lost_place} and someone handed it in.",
     ["Where did {spk} misplace their purse?"], "lost_place"),
    ("We're hosting {guests} people for my mum's birthday lunch.",
     ["How many guests are coming to the celebration for {spk}'s mother?"], "guests"),
    ("I finally paid off my student loan, {loan_years} years after graduating.",
     ["How long did it take {spk} to clear the university debt?"], "loan_years"),
    ("My partner and I are expecting twins in {future_month}.",
     ["When are {spk}'s babies due?"], "future_month"),
    ("I've taken up {sport} on Sunday mornings.",
     ["Which game does {spk} play at the weekend?"], "sport"),
    ("My uncle left me his old {heirloom} in his will.",
     ["What did {spk} inherit from a relative?"], "heirloom"),
    ("I get migraines whenever I {trigger}.",
     ["What sets off {spk}'s head pain?"], "trigger"),
    ("We sold our flat in {city} and are renting for now.",
     ["Where did {spk} own property before?"], "city"),
    ("I've been volunteering at the {volunteer} on Saturdays.",
     ["Where does {spk} help out unpaid at weekends?"], "volunteer"),
    ("My phone screen cracked when I dropped it on the {surface}.",
     ["How did {spk}'s mobile get damaged?"], "surface"),
    ("I'm saving up for a {goal}.",
     ["What is {spk} putting money aside to buy?"], "goal"),
    ("The doctor put me on {supp} tablets.",
     ["Which supplement was {spk} prescribed?"], "supp"),
    ("My grandfather grew up on a farm near {region}.",
     ["Where was {spk}'s grandpa raised?"], "region"),
    ("I accidentally dyed all my white shirts {dye}.",
     ["What laundry disaster did {spk} have?"], "dye"),
    ("We're getting solar panels put on the roof in {future_month}.",
     ["When will {spk}'s house start producing its own electricity?"], "future_month"),
    ("My teenage son wants a {present} for his birthday.",
     ["What present is {spk}'s boy hoping for?"], "present"),
    ("I've had insomnia ever since {cause}.",
     ["Why can't {spk} sleep well lately?"], "cause"),
    ("My mother-in-law is moving in with us in {future_month}.",
     ["When does {spk}'s spouse's mum join the household?"], "future_month", "married"),
    ("Our wedding venue is an old {venue} outside {town}.",
     ["Where is {spk} getting married?"], "venue", "engaged"),
    ("I ate a bad {bad_food} in {city} and was sick for days.",
     ["What gave {spk} food poisoning on holiday?"], "bad_food"),
    ("We've named the new hamster {hamster}.",
     ["What is {spk}'s little rodent called?"], "hamster"),
    ("I'm terrified of {fear}.",
     ["What creature frightens {spk}?"], "fear"),
    ("My parents met at a {meet} in the seventies.",
     ["How did {spk}'s mum and dad first cross paths?"], "meet"),
    ("We keep hens now, {hens} of them in the back garden.",
     ["How many poultry does {spk} have?"], "hens"),
    ("I used to be a professional {former} before my injury.",
     ["What was {spk}'s earlier career?", "What did {spk} do for a living in the past?"], "former"),
    ("Our street is closed for roadworks until {future_month}.",
     ["When will the digging outside {spk}'s home end?"], "future_month"),
    ("My son has been picked for the county {team_sport} squad.",
     ["Which sport will {spk}'s boy represent the region in?"], "team_sport"),
    ("I wake at five every day to work on my {creative}.",
     ["What is {spk}'s early-morning passion project?"], "creative"),
    ("I've lost {kilos} kilos this year just by walking everywhere.",
     ["How much weight has {spk} dropped?"], "kilos"),
    ("I'm taking a sabbatical to sail around {sail_region}.",
     ["Where is {spk} going on that long break from work?"], "sail_region"),
    ("I finally quit smoking after {smoke_years} years.",
     ["How long did {spk} have the tobacco habit?"], "smoke_years"),
]

# --- mixed pairs: some shared content words ------------------------------------------
MIXED = [
    ("My sister {fname} works as a {job} in {city}.",
     ["What does {spk}'s sister do for a job?"], "job"),
    ("Our cat {catname} turned {cat_age} last week.", ["How old is {spk}'s cat now?"], "cat_age"),
    ("I'm training for a {swim_dist} charity swim in {future_month}.",
     ["When is {spk}'s charity swim happening?"], "future_month"),
    ("I started a new job at a {company_type} called {company}.",
     ["What's the name of the company where {spk} got the new job?"], "company"),
    ("My favourite restaurant in town is a {cuisine} place near the station.",
     ["What kind of restaurant does {spk} like best around town?"], "cuisine"),
    ("We're redoing the bathroom with {tile} tiles.",
     ["What is going on the bathroom walls at {spk}'s place?"], "tile"),
    ("My best friend {cname} lives in {city} now.",
     ["Which city does {spk}'s best friend call home?"], "city"),
    ("I do yoga at {yoga_time} every morning before work.",
     ["What time does {spk} do yoga?"], "yoga_time"),
    ("The kids' football practice is on {weekday} after school.",
     ["Which day is the children's football training?"], "weekday"),
    ("I ordered a {colour} sofa and it arrives in {nweeks} weeks.",
     ["What colour is the sofa {spk} ordered?"], "colour"),
    ("The dentist found {ncav} cavities at my checkup.",
     ["How many fillings does {spk} need after the dentist visit?"], "ncav"),
    ("My boss {cname} is retiring in {future_month}.",
     ["When does {spk}'s boss stop working?"], "future_month"),
    ("My dad's birthday is on the {ordinal} of {any_month}.",
     ["When is the birthday of {spk}'s father?"], "ordinal"),
    ("Our holiday cottage is in {cottage} and it has no wifi.",
     ["Where is the holiday cottage {spk} rents?"], "cottage"),
    ("I sprained my ankle playing {sport2}.", ["How did {spk} hurt their ankle?"], "sport2"),
    ("I'm growing {veg} on the balcony this year.", ["What is {spk} growing at home?"], "veg"),
    ("My niece {fname} just graduated in {field}.",
     ["What did {spk}'s niece study at university?"], "field"),
    ("The plumber is coming on {weekday} to fix the leak.",
     ["When is the plumber visiting {spk}?"], "weekday"),
    ("I got tickets to see {band} in {city} in {future_month}.",
     ["Which band did {spk} get concert tickets for?"], "band"),
    ("I've cut out sugar for {nweeks} weeks now.", ["How long has {spk} been off sugar?"], "nweeks"),
    ("My daughter is playing the {role} in the school play.",
     ["Which part did {spk}'s daughter get in the play?"], "role"),
    ("We switched energy supplier and save about {n2} {currency} a month.",
     ["How much is {spk} saving on energy?"], "n2"),
    ("I'm learning to cook {cuisine2} food from online videos.",
     ["What food is {spk} teaching themselves to make?"], "cuisine2"),
    ("I finally got my {cert} certificate.", ["Which certificate did {spk} earn?"], "cert"),
    ("My cousin {cname} is getting married in {city} in {future_month}.",
     ["Where is {spk}'s cousin's wedding?"], "city"),
    ("I walk about {steps} thousand steps a day.", ["How many steps does {spk} average?"], "steps"),
    ("We took the kids to the {museum} museum on Sunday.",
     ["Which museum did {spk} visit with the children?"], "museum"),
    ("The nurse said my blood pressure is {bp}.",
     ["How is {spk}'s blood pressure these days?"], "bp"),
    ("We're taking the kids to {halfterm} over half-term.",
     ["Where is {spk} going for half-term?"], "halfterm"),
    ("I bought a {bike} bike for weekend rides.", ["What kind of bike did {spk} buy?"], "bike"),
    ("I see a counsellor every {weekday} evening.",
     ["On which day does {spk} see the counsellor?"], "weekday"),
    ("Our wedding anniversary is on the {ordinal} of {any_month}.",
     ["What date is {spk}'s wedding anniversary?"], "any_month", "married"),
    ("My gym membership costs {n2} {currency} a month.",
     ["How much does {spk} pay for the gym?"], "n2"),
    ("My grandad was a {grand_job} for forty years.",
     ["What did {spk}'s grandad do for work?"], "grand_job"),
    ("I've booked a {trip_kind} in {country} for {future_month}.",
     ["What trip has {spk} booked for later this year?"], "trip_kind"),
]

# --- exact families: same template, a different rare token per instance --------------
EXACT = [
    dict(name="visitor", token="rare_given",
         facts=["My {relation} {rare_given} is flying in from {city} {when}.",
                "{rare_given}, my {relation}, flies in from {city} {when}."],
         questions=[("Where is {rare_given} flying in from?", "city"),
                    ("Which city is {rare_given} coming from?", "city")]),
    dict(name="flight", token="flight",
         facts=["Our flight to {city} is {flight}, it leaves at {clock}.",
                "I'm booked on {flight} to {city}, departing {clock}."],
         questions=[("Where is flight {flight} going?", "city"),
                    ("What time does {flight} leave?", "clock")]),
    dict(name="flat", token="num3",
         facts=["The neighbour in flat {num3} complained about our {noise}.",
                "Flat {num3} left a note moaning about our {noise}."],
         questions=[("What did the neighbour in flat {num3} complain about?", "noise"),
                    ("What is flat {num3} unhappy about?", "noise")]),
    dict(name="colleague", token="rare_given",
         facts=["{rare_given} just joined my team as the new {role2}.",
                "We hired {rare_given} as our {role2} this week."],
         questions=[("What's {rare_given}'s role on the team?", "role2"),
                    ("What job does {rare_given} do?", "role2")]),
    dict(name="price", token="num3",
         facts=["The {purchase} I ordered came to {num3} {currency}.",
                "Paid {num3} {currency} for a {purchase}, ouch."],
         questions=[("What did {spk} pay {num3} {currency} for?", "purchase"),
                    ("Which purchase cost {num3} {currency}?", "purchase")]),
    dict(name="booking", token="bcode",
         facts=["Booking reference {bcode} is the {lodging} in {city}.",
                "Our {lodging} in {city} has the reference {bcode}."],
         questions=[("Which city is booking {bcode} for?", "city"),
                    ("Where is the stay with reference {bcode}?", "city")]),
    dict(name="doctor", token="rare_surname",
         facts=["Dr {rare_surname} is the {specialist} looking at my {complaint}.",
                "Saw Dr {rare_surname}, the {specialist}, about my {complaint}."],
         questions=[("What kind of doctor is Dr {rare_surname}?", "specialist"),
                    ("What is Dr {rare_surname} checking {spk} for?", "complaint")]),
    dict(name="pet", token="rare_pet",
         facts=["{cname}'s {animal} is called {rare_pet}.",
                "{cname} has a {animal} named {rare_pet}."],
         questions=[("What kind of animal is {rare_pet}?", "animal"),
                    ("Whose pet is {rare_pet}?", "cname")]),
    dict(name="restaurant", token="rare_rest",
         facts=["We tried {rare_rest}, the new {cuisine} place by the {landmark}.",
                "Had lunch at {rare_rest}, that {cuisine} spot near the {landmark}."],
         questions=[("What kind of food does {rare_rest} serve?", "cuisine"),
                    ("Where is {rare_rest}?", "landmark")]),
    dict(name="keybox", token="num4",
         facts=["The key box at {kb_place} opens with {num4}.",
                "Code for the key box at {kb_place} is {num4}, don't tell anyone."],
         questions=[("What does the code {num4} open?", "kb_place"),
                    ("Where is the key box with code {num4}?", "kb_place")]),
    dict(name="novel", token="rare_surname",
         facts=["I'm reading a novel by {rare_surname} about {subject2}.",
                "Just started the new {rare_surname} novel, it's about {subject2}."],
         questions=[("What is the {rare_surname} novel about?", "subject2"),
                    ("What's the book by {rare_surname} about?", "subject2")]),
]

# --- stale topics: an early anchor, later echoes on the same topic --------------------
STALE = [
    dict(name="instrument", fixed=["instr"],
         anchor="I started {instr} lessons with a teacher called {cname} in {past_month}.",
         questions=[("mixed", "Who teaches {spk} the {instr}?", "cname"),
                    ("paraphrase", "Who gives {spk} music tuition?", "cname"),
                    ("mixed", "When did {spk} begin {instr} lessons?", "past_month")],
         echoes=["{Instr} practice was rough today, my {body} ache.",
                 "My {instr} needs new strings before {event}.",
                 "Practised {instr} scales for {dur} tonight, the neighbours must love me.",
                 "Carrying the {instr} on the bus is a nightmare.",
                 "Recorded myself playing the {instr} and winced.",
                 "I keep rushing the slow bits on the {instr}, {excl}."]),
    dict(name="car", fixed=[],
         anchor="We finally bought a car, a second-hand {car_colour} {car_model}.",
         questions=[("mixed", "What car did {spk} buy?", "car_model"),
                    ("paraphrase", "Which vehicle did {spk} end up purchasing?", "car_model")],
         echoes=["The car is making a weird rattling noise again, {excl}.",
                 "Took the car in for a service, {cost_phrase}.",
                 "Spent the morning washing the car, {excl}.",
                 "The car wouldn't start this morning, {excl}.",
                 "Filled up the car on the way home, fuel is so expensive.",
                 "Someone scratched the car in the supermarket car park."]),
    dict(name="marathon", fixed=[],
         anchor="I've signed up for the {city} marathon this October.",
         questions=[("mixed", "Which marathon is {spk} running?", "city"),
                    ("paraphrase", "What long-distance race has {spk} entered?", "city")],
         echoes=["Did a {km} km training run for the marathon this morning.",
                 "Marathon training is eating all my weekends, {excl}.",
                 "Bought new running shoes for the marathon.",
                 "Marathon plan says rest day today, thank goodness.",
                 "Ran in the rain again, the marathon waits for no one.",
                 "Only {nweeks} weeks of marathon training left."]),
    dict(name="allotment", fixed=[],
         anchor="The first thing I planted on the allotment was {crop}.",
         questions=[("paraphrase", "What was the earliest crop {spk} sowed in the community garden?",
                     "crop"),
                    ("mixed", "What did {spk} put in the ground first at the allotment?", "crop")],
         echoes=["Spent all Saturday weeding the allotment.",
                 "Slugs have eaten half the allotment again, {excl}.",
                 "The allotment shed leaks when it rains.",
                 "Took a bag of stuff from the allotment to my {rel_any}.",
                 "Watering the allotment takes forever in this heat.",
                 "Someone left a wheelbarrow of manure by our allotment gate."]),
    dict(name="language", fixed=[],
         anchor="I'm learning {language} because my partner's family is from {lang_place}.",
         questions=[("mixed", "Why did {spk} decide to learn {language}?", "lang_place"),
                    ("paraphrase", "What's the reason {spk} is studying a foreign tongue?",
                     "lang_place")],
         echoes=["My {language} homework took ages tonight.",
                 "I had a whole conversation in {language} today!",
                 "{Language} grammar is doing my head in, {excl}.",
                 "Learning {language} vocabulary on the bus every morning.",
                 "My {language} teacher says my accent is getting better.",
                 "Watched a film in {language} without subtitles, mostly."]),
    dict(name="kitchen", fixed=[],
         anchor="The builder doing our kitchen is called {cname}.",
         questions=[("mixed", "Who is renovating {spk}'s kitchen?", "cname")],
         echoes=["The kitchen is still full of dust.",
                 "New kitchen tiles arrived today, they're {colour}.",
                 "We're living on takeaways until the kitchen is done.",
                 "The kitchen worktop went in crooked, {excl}.",
                 "Only the kitchen sink left to fit now.",
                 "Cooking on a camping stove while the kitchen is gutted."]),
    dict(name="knee", fixed=[],
         anchor="The physio says my knee pain comes from weak {muscle}.",
         questions=[("mixed", "What's causing {spk}'s knee pain?", "muscle"),
                    ("paraphrase", "What did the physiotherapist blame for {spk}'s sore joint?",
                     "muscle")],
         echoes=["My knee was sore again after the stairs.",
                 "Iced my knee all evening in front of the telly.",
                 "The knee feels better when I cycle.",
                 "Doing my knee exercises before bed like a good patient.",
                 "Knee brace arrived today, it's very {brace_adj}.",
                 "Had to skip the walk, my knee was playing up."]),
    dict(name="sourdough", fixed=[],
         anchor="I got my sourdough starter from my {giver}.",
         questions=[("mixed", "Who gave {spk} the sourdough starter?", "giver"),
                    ("paraphrase", "Where did {spk}'s bread culture come from originally?",
                     "giver")],
         echoes=["My sourdough came out flat again.",
                 "Feeding the starter twice a day now, it's like a pet.",
                 "Made sourdough pizza last night, not bad at all.",
                 "The starter smells like nail varnish, is that normal?",
                 "Gave a loaf of sourdough to the neighbours.",
                 "Forgot to feed the starter for a week and it survived."]),
    dict(name="bookclub", fixed=[],
         anchor="Our book club meets at {venue2} on the first Thursday of the month.",
         questions=[("mixed", "Where does {spk}'s book club get together?", "venue2"),
                    ("paraphrase", "What's the venue for {spk}'s reading group?", "venue2")],
         echoes=["Book club tonight and I haven't finished the novel.",
                 "Book club picked another thriller, {excl}.",
                 "I'm bringing the snacks to book club this time.",
                 "Book club argued about the ending for an hour.",
                 "Someone new joined book club, she's lovely.",
                 "Skipped book club, I was too tired."]),
    dict(name="puppy", fixed=[],
         anchor="We named the puppy {pup} after my {namesake}.",
         questions=[("mixed", "Who inspired the name of {spk}'s puppy?", "namesake")],
         echoes=["The puppy chewed my shoes again.",
                 "Puppy training class was chaos, {excl}.",
                 "The puppy finally slept through the night!",
                 "Took the puppy to the beach for the first time.",
                 "The puppy is scared of the hoover.",
                 "The puppy stole a whole sausage off the table."]),
    dict(name="bouldering", fixed=[],
         anchor="I started bouldering at a gym called {gym} in {past_month}.",
         questions=[("paraphrase", "When did {spk} take up climbing?", "past_month"),
                    ("mixed", "Which climbing gym does {spk} go bouldering at?", "gym")],
         echoes=["Bouldering tonight, my forearms are dead.",
                 "Finally topped the {route_colour} route at bouldering!",
                 "Tore the skin on my fingers bouldering again.",
                 "Bouldering with {fname} later, she's way better than me.",
                 "Bought proper bouldering shoes, they pinch.",
                 "Fell off the same bouldering problem ten times, {excl}."]),
    dict(name="newflat", fixed=[],
         anchor="We signed the lease on the new flat on {street}.",
         questions=[("mixed", "What street is {spk}'s new flat on?", "street"),
                    ("paraphrase", "Where is {spk}'s apartment located?", "street")],
         echoes=["Still unpacking boxes in the new flat.",
                 "The new flat is freezing in the mornings.",
                 "Our new flat gets such nice light.",
                 "Hung pictures in the new flat all weekend.",
                 "The neighbours at the new flat are lovely.",
                 "The new flat's boiler makes a funny noise, {excl}."]),
]

# --- background facts: never asked --------------------------------------------------
BACKGROUND = [
    "I watched a documentary about {doc} last night.",
    "We repainted the garden fence {fence} over the weekend.",
    "I finally fixed the wobbly {furniture}.",
    "I made {dish} for dinner and it was actually good.",
    "I cleared out the {room} and took four bags to the charity shop.",
    "We went to a {event2} at the park on Saturday.",
    "I've been listening to a podcast about {pod}.",
    "My {relative} sent me a parcel of {gift}.",
    "I got a parking fine outside the {shop}.",
    "We had friends over and played {game} until midnight.",
    "I signed a petition about the {issue}.",
    "The {appliance} broke again, so annoying.",
    "I spent the afternoon {afternoon}.",
    "I booked a haircut for {weekday}.",
    "I tried {new_food} for the first time and loved it.",
    "I've been running late all week because of {delay}.",
    "We binge-watched a whole series about {doc} this weekend.",
    "My {relative} taught me how to make {dish}.",
]

# --- small talk ------------------------------------------------------------------------
ST = {
    "hi": ["Hi", "Hey", "Hello", "Hiya", "Hey you", "Hey hey", "Heya", "Oh hi", "Hi there", "Yo",
           "Hallo", "Hello hello"],
    "howq": ["How's your {period} going?", "How have you been?", "How are things?", "What's new?",
             "Long time no chat.", "Got a minute?", "How's everything on your side?",
             "Are you around?", "Hope your {period} is going well.", "Still alive over there?"],
    "period": ["day", "week", "weekend", "month", "week off"],
    "state": ["Pretty good, thanks.", "Not bad, a bit tired.", "Surviving!", "All good here.",
              "Busy but fine.", "Can't complain.", "Up and down, to be honest.",
              "Better now the week is nearly over.", "Good, good.", "Oh you know, same old."],
    "back": ["And you?", "How about you?", "You?", "What about you?", "How's yours?", ""],
    "interj": ["Oh", "Wow,", "Ha,", "Ooh,", "Huh,", "Nice,", "Haha,", "Hmm,", "Ah,", "Whoa,",
               "Right,", "Oh wow,", "Well,", "Okay,"],
    "reaction": ["that's amazing.", "that sounds lovely.", "I had no idea.", "that's so typical.",
                 "good for you!", "I'm so jealous.", "that's hilarious.", "fair enough.",
                 "that's a lot.", "I love that.", "makes sense.", "sounds exhausting.",
                 "tell me more.", "no way.", "really?", "that's big news.", "interesting.",
                 "I did not see that coming.", "of course it is.", "what a week."],
    "follow": ["How did that go?", "Were you nervous?", "What happens next?", "Keep me posted.",
               "Send pictures!", "I'd love to hear more.", "You deserve it.", "Fingers crossed.",
               "Let me know if you need a hand.", "Is that a good thing?", "How do you feel about it?",
               "Did you see that coming?", "Who else knows?", "Sounds like a plan."],
    "w_open": ["It's", "It's been", "Today is", "Out here it's", "The weather is", "Honestly it's"],
    "w_tail": [".", ", typical.", " and I forgot my umbrella.", ", so I'm staying in.",
               ", perfect for a walk.", " again, I'm over it.", " and the washing is still outside.",
               ", what is going on?"],
    "t_open": ["I'm", "I'm feeling", "Honestly, I'm", "Ugh, I'm", "I'm still", "Bit of a day, I'm"],
    "t_adj": ["shattered", "knackered", "so tired", "half asleep", "running on fumes", "exhausted",
              "wiped out", "a bit foggy"],
    "t_reason": [" today.", " after this week.", ", didn't sleep well.", ", too many late nights.",
                 ", I need a holiday.", " and it's only Tuesday.", ", the neighbours were loud.",
                 ", nothing is helping."],
    "p_open": ["I think I'll", "I might", "Planning to", "I'm going to", "Hoping to",
               "Probably going to"],
    "p_act": ["have a quiet night in", "go for a long walk", "catch up on sleep", "tidy up",
              "watch something silly", "call my mum", "do the food shop", "finally sort my emails",
              "try that new cafe", "read on the sofa", "sort the laundry", "do nothing at all",
              "meet a friend for a drink", "go to the market"],
    "p_time": ["later", "tonight", "this weekend", "tomorrow", "after work", "on Sunday",
               "this evening", "in a bit"],
    "j_open": ["", "Ha, ", "Honestly, ", "Not gonna lie, ", "Confession: ", "Fun fact: "],
    "joke": ["my plants are the only ones who listen to me.",
             "I've reached the age where naps are a hobby.",
             "my to-do list has its own to-do list.", "I put my keys in the fridge again.",
             "I talk to the toaster more than to people.",
             "the laundry pile has become sentient.",
             "I said 'you too' when the waiter told me to enjoy my meal.",
             "my phone autocorrected my own name.", "I've been about to leave for an hour.",
             "I bought a planner and never opened it.", "I waved back at someone waving behind me.",
             "I pushed a door that clearly said pull.", "my houseplants have unionised.",
             "I ate dessert first, no regrets.", "I've alphabetised the spice rack out of spite."],
    "j_tail": ["", " Send help.", " Anyway.", " Don't judge.", " Classic me.", " True story."],
    "qb_open": ["", "Anyway, ", "So, ", "Oh, and ", "Enough about me, ", "By the way, "],
    "qb": ["what about you, {other}? {qb_tail}", "how's {thing} going?",
           "anything fun planned? {qb_tail}", "how did {thing} go in the end?",
           "what are you up to {p_time}? {qb_tail}", "any news on {thing}?",
           "what's the latest with {thing}?"],
    "qb_tail": ["Still busy?", "Any news?", "Surviving?", "Good week?", "Sleeping at all?",
                "Any plans?"],
    "thing": ["the new routine", "the job hunt", "the house stuff", "that meeting", "the interview",
              "your project", "the garden", "the diet", "the exam", "the paperwork", "the move",
              "the tax return", "the wedding planning", "your side hustle", "the party planning"],
    "misc": ["I could really go for {craving} {craving_when}.",
             "Have you watched anything good lately? I need {show}.",
             "My phone is on {pct} percent, so if I vanish, that's why.",
             "The {shop} down the road has {shop_news}.",
             "Did you hear about {news}? {news_tail}", "I keep meaning to {chore} and keep not doing it.",
             "Random thought: we should {idea} sometime."],
    "craving": ["a pizza", "a big bowl of noodles", "a cheese toastie", "chips", "ice cream",
                "a curry", "pancakes", "a proper coffee"],
    "craving_when": ["right now", "tonight", "after this week", "for lunch", "at this point",
                     "and nothing else"],
    "show": ["something funny", "a new series", "something with no murders", "a good documentary",
             "something light", "a cosy mystery"],
    "pct": ["two", "three", "five", "eight", "ten"],
    "shop": ["bakery", "corner shop", "hardware shop", "bookshop", "chippy"],
    "shop_news": ["closed for good", "new owners", "a queue out the door", "changed its sign",
                  "started doing brunch"],
    "news": ["the bridge closing", "the new bus timetable", "the strike", "the festival lineup",
             "the power cut last night", "the storm warning"],
    "news_tail": ["Madness.", "I only just saw it.", "Everyone's talking about it.", "Wild.",
                  "What a mess."],
    "chore": ["clean the oven", "back up my photos", "fix the shelf", "reply to everyone",
              "sort the recycling", "cancel that subscription"],
    "idea": ["do a picnic", "try karaoke", "go to the coast", "have a games night",
             "take a cooking class", "do a quiz night"],
    "bye": ["Right, I'd better go", "OK, gotta run", "Talk soon", "Speak later", "Off to bed now",
            "Catch you later", "Must dash", "Anyway, time to cook", "Right, back to it",
            "Night night"],
    "bye_why": ["the pasta is boiling over", "my battery is dying", "the kids need me",
                "I have a call in five", "the bus is here", "I can hear the dog whining",
                "dinner won't cook itself", "I'm falling asleep", "my tea's gone cold",
                "someone's at the door"],
    "opener": ["", "Quick one for you.", "Sorry I went quiet.", "I have news.", "Guess what.",
               "Bored at the station.", "On my lunch break.", "Finally a quiet moment.",
               "Hiding from the laundry."],
    "opener2": ["", "Just got home.", "Sat on the sofa finally.", "Waiting for the kettle.",
                "In a queue, so perfect timing.", "Half watching telly."],
    "bye_tail": ["!", ", {other}!", ". Take care.", ", say hi to everyone.", " x", ". Night!",
                 ", chat tomorrow.", ". Don't work too hard."],
}
WEATHER = {
    "winter": ["absolutely freezing", "grey and drizzly", "snowing a little",
               "icy on the pavements", "bitterly cold", "blowing a gale", "dark so early"],
    "spring": ["finally a bit warmer", "showery on and off", "sunny for once", "mild and breezy",
               "all blossom and pollen", "grey and drizzly"],
    "summer": ["boiling hot", "humid and sticky", "sunny for once", "thundery",
               "way too hot to sleep", "pouring with rain"],
    "autumn": ["crisp and sunny", "windy and wet", "foggy all morning", "suddenly chilly",
               "pouring with rain"],
}
SMALL_TALK = {
    "open": ["{hi} {other}! {howq} {opener}", "{hi}, {other}. {opener} {howq}",
             "{hi}! {opener} {howq}"],
    "reply": ["{hi} {other}! {state} {back}", "{state} {opener2} {back}", "{hi}! {state} {opener2}"],
    "react": ["{interj} {reaction} {follow}", "{interj} {reaction} {follow}",
              "{interj} {other}, {reaction}"],
    "weather": ["{w_open} {weather}{w_tail}"],
    "tired": ["{t_open} {t_adj}{t_reason}"],
    "plans": ["{p_open} {p_act} {p_time}."],
    "joke": ["{j_open}{joke}{j_tail}"],
    "qback": ["{qb_open}{qb}"],
    "misc": ["{misc}"],
    "bye": ["{bye}, {bye_why}{bye_tail}"],
}


def slot_names(template):
    return [f for _, f, _, _ in string.Formatter().parse(template) if f]


def fill(template, values):
    """Format template; {Name} is values["name"] with its first letter capitalised."""
    out = {}
    for name in slot_names(template):
        if name in values:
            out[name] = values[name]
        else:
            v = values[name[0].lower() + name[1:]]
            out[name] = v[0].upper() + v[1:]
    return tidy(template.format(**out))


def tidy(text):
    """One space between words, "an" before a vowel, a capital first letter."""
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\b([Aa]) (?=[aeioAEIO](?!ne\b|ne-))", r"\1n ", text)
    return text[0].upper() + text[1:]


class Fact:
    def __init__(self, role, template, speaker, group=None, fixed=None):
        self.role = role  # paraphrase, mixed, exact, anchor, echo, background
        self.template = template
        self.speaker = speaker
        self.group = group  # the table entry this fact comes from
        self.fixed = dict(fixed or {})
        self.question = None  # (kind, template, answer slot, stale) when asked
        self.session = None
        self.values = None


class User:
    def __init__(self, rng, index, speakers):
        self.rng = rng
        self.uid = f"u{index + 1:02d}"
        self.speakers = speakers
        self.currency = rng.choice(CURRENCIES)
        self.pools = {}
        for name, pool in (("fname", FEMALE_NAMES), ("mname", MALE_NAMES), ("rare_given", RARE_GIVEN),
                           ("rare_surname", RARE_SURNAMES), ("rare_pet", RARE_PETS),
                           ("rare_rest", RARE_RESTAURANTS)):
            pool = list(pool)
            rng.shuffle(pool)
            self.pools[name] = pool
        self.used_numbers = set()

    def number(self, make):
        while True:
            value = make()
            if value.lower() not in self.used_numbers:
                self.used_numbers.add(value.lower())
                return value

    def pick(self, slot, date):
        rng = self.rng
        if slot == "cname":
            slot = rng.choice(["fname", "mname"])
        if slot in self.pools:
            return self.pools[slot].pop()
        if slot == "past_month":
            return MONTHS[(date.month - 1 - rng.randint(1, 2)) % 12]
        if slot == "future_month":
            return MONTHS[(date.month - 1 + rng.randint(1, 4)) % 12]
        if slot == "any_month":
            return rng.choice(MONTHS)
        if slot == "currency":
            return self.currency
        if slot == "n2":
            return str(rng.randint(12, 95))
        if slot == "km":
            return str(rng.randint(14, 32))
        letters = "ABCDEFHJKLMNPQRSTUVWXZ"
        if slot == "num3":
            return self.number(lambda: str(rng.randint(101, 989)))
        if slot == "num4":
            return self.number(lambda: str(rng.choice([rng.randint(1100, 1899),
                                                       rng.randint(2101, 9899)])))
        if slot == "flight":
            return self.number(lambda: rng.choice(letters) + rng.choice(letters)
                               + str(rng.randint(210, 4899)))
        if slot == "bcode":
            return self.number(lambda: "".join(rng.choice(letters) for _ in range(3))
                               + str(rng.randint(200, 999)))
        return rng.choice(SLOTS[slot])

    def render(self, fact, date, avoid=None):
        """Fill fact's slots; avoid maps slot -> values already used by its siblings."""
        values = dict(fact.fixed)
        for name in slot_names(fact.template):
            key = name[0].lower() + name[1:]
            if key in values:
                continue
            if key in PAIRED:
                values[key] = PAIRED[key][1][values[PAIRED[key][0]]]
                continue
            for _ in range(30):
                values[key] = self.pick(key, date)
                if not avoid or values[key] not in avoid.get(key, ()):
                    break
        fact.values = values
        return fill(fact.template, values)


def plan_facts(rng, user):
    """Every fact turn of a user, with the questions to ask marked on them."""
    a, b = user.speakers
    spk = lambda: rng.choice([a, b])
    married = spk()
    life = {"married": married, "engaged": b if married == a else a}  # never the same person
    facts = []
    # Stale topics: six per user, an anchor and four or five echoes each.
    stale_kinds = {"paraphrase": 0, "mixed": 0}
    for topic in rng.sample(STALE, 6):
        speaker = spk()
        fixed = {}
        for slot in topic["fixed"]:
            fixed[slot] = rng.choice(SLOTS[slot])
        if topic["name"] == "language":
            fixed["language"], fixed["lang_place"] = rng.choice(LANGUAGES)
        anchor = Fact("anchor", topic["anchor"], speaker, topic, fixed)
        kind, question, answer = rng.choice(topic["questions"])
        anchor.question = (kind, question, answer, True)
        stale_kinds[kind] += 1
        anchor.echoes = [Fact("echo", e, speaker, topic, fixed)
                         for e in rng.sample(topic["echoes"], rng.randint(4, 5))]
        facts.append(anchor)
        facts.extend(anchor.echoes)
    # Exact families: seven per user, sixteen questions, two or three per family.
    families = rng.sample(EXACT, 7)
    asks = [2] * 7
    for i in rng.sample(range(7), 2):
        asks[i] += 1
    for family, n_ask in zip(families, asks):
        members = [Fact("exact", rng.choice(family["facts"]), spk(), family)
                   for _ in range(n_ask + rng.randint(2, 3))]
        for member in rng.sample(members, n_ask):
            question, answer = rng.choice(family["questions"])
            member.question = ("exact", question, answer, False)
        facts.extend(members)
    # Paraphrase and mixed templates: all of them, once each; some asked.
    for table, role, n_ask in ((PARAPHRASE, "paraphrase", 16 - stale_kinds["paraphrase"]),
                               (MIXED, "mixed", 13 - stale_kinds["mixed"])):
        members = [Fact(role, entry[0], life.get(entry[3]) if len(entry) > 3 else spk(), entry)
                   for entry in table]
        for member in rng.sample(members, n_ask):
            member.question = (role, rng.choice(member.group[1]), member.group[2], False)
        facts.extend(members)
    return facts


def plan_sessions(rng, n_turns, n_facts):
    """Session lengths (8-18) summing to n_turns, and fact slots per session."""
    n_sessions = rng.randint(31, 38)
    lengths = [rng.randint(9, 17) for _ in range(n_sessions)]
    while sum(lengths) != n_turns:
        i = rng.randrange(n_sessions)
        if sum(lengths) < n_turns and lengths[i] < 18:
            lengths[i] += 1
        elif sum(lengths) > n_turns and lengths[i] > 8:
            lengths[i] -= 1
    caps = [max(1, round(length * n_facts / n_turns)) for length in lengths]
    while sum(caps) != n_facts:
        i = rng.randrange(n_sessions)
        if sum(caps) < n_facts and caps[i] < lengths[i] - 3:
            caps[i] += 1
        elif sum(caps) > n_facts and caps[i] > 1:
            caps[i] -= 1
    return lengths, caps


def session_starts(rng, n_sessions):
    """Session start times from early January to late September 2026."""
    first = datetime(2026, 1, 2) + timedelta(days=rng.randint(0, 6))
    spread = rng.randint(255, 262) - 2 * (n_sessions - 1)  # at least two days apart
    weights = [rng.uniform(0.35, 2.2) for _ in range(n_sessions - 1)]
    day, starts = 0.0, []
    for i in range(n_sessions):
        start = first + timedelta(days=int(day))
        starts.append(start.replace(hour=rng.randint(7, 22), minute=rng.randint(0, 59)))
        if i < n_sessions - 1:
            day += 2 + weights[i] / sum(weights) * spread
    return starts


def season(month):
    return "winter" if month <= 3 else "spring" if month <= 5 else "summer" if month <= 8 else "autumn"


def small_talk(rng, category, other, date):
    template = rng.choice(SMALL_TALK[category])
    values = {"other": other, "weather": rng.choice(WEATHER[season(date.month)])}
    # Fillers may hold slots themselves ({period}, {thing}, ...): expand until none left.
    text = template
    while "{" in text:
        for name in slot_names(text):
            if name not in values:
                values[name] = rng.choice(ST[name])
        text = text.format(**values)
        values = {"other": other}
    return tidy(text)


def place_facts(rng, facts, caps):
    """Put each fact in a session: stale anchors in the first third, their echoes later."""
    n_sessions = len(caps)
    free = list(caps)
    for fact in facts:
        if fact.role == "anchor":
            fact.session = rng.choice([s for s in range(n_sessions // 3) if free[s] > 0])
            free[fact.session] -= 1
            later = [s for s in range(max(n_sessions // 3, fact.session + 1), n_sessions)
                     if free[s] > 0]
            for echo, s in zip(fact.echoes, sorted(rng.sample(later, len(fact.echoes)))):
                echo.session = s
                free[s] -= 1
    rest = [fact for fact in facts if fact.session is None]
    slots = [s for s in range(n_sessions) for _ in range(free[s])]
    assert len(rest) == len(slots)
    rng.shuffle(rest)
    for fact, s in zip(rest, slots):
        fact.session = s


def next_small_talk(rng, t, length, previous):
    """The kind of small talk for turn t, given what the turn before was."""
    if t == 0:
        return "open"
    if t == 1 and previous == "open":
        return "reply"
    if t == length - 1:
        return "bye"
    if previous == "fact" and rng.random() < 0.7:
        return rng.choice(["react", "react", "react", "qback"])
    return rng.choice(["weather", "tired", "plans", "joke", "qback", "misc"])


def build_user(rng, index, speakers):
    user = User(rng, index, speakers)
    other_of = lambda name: speakers[1] if name == speakers[0] else speakers[0]
    facts = plan_facts(rng, user)
    n_turns = rng.randint(428, 455)
    background = round(n_turns * rng.uniform(0.38, 0.42)) - len(facts)
    for template in rng.sample(BACKGROUND * 2, max(0, background)):
        facts.append(Fact("background", template, rng.choice(speakers)))
    lengths, caps = plan_sessions(rng, n_turns, len(facts))
    place_facts(rng, facts, caps)
    n_sessions = len(lengths)
    starts = session_starts(rng, n_sessions)

    memories, turns = [], []  # turns: (memory, fact or None, session index)
    family_values, seen = {}, set()
    for s, (length, start) in enumerate(zip(lengths, starts)):
        session_facts = [fact for fact in facts if fact.session == s]
        rng.shuffle(session_facts)
        positions = sorted(rng.sample(range(1, length - 1), len(session_facts)))
        at = dict(zip(positions, session_facts))
        speaker, when, previous = rng.choice(speakers), start, None
        for t in range(length):
            fact = at.get(t)
            if fact is not None:
                speaker = fact.speaker
                # Members of an exact family differ in every slot, not just the token.
                avoid = family_values.setdefault(id(fact.group), {}) if fact.role == "exact" else None
                text = user.render(fact, start, avoid)
                while fact.role == "background" and text in seen:
                    text = user.render(fact, start)
                seen.add(text)
                for k, v in fact.values.items():
                    if avoid is not None:
                        avoid.setdefault(k, set()).add(v)
                previous = "fact"
            else:
                previous = next_small_talk(rng, t, length, previous)
                if t > 0 and (previous in ("reply", "react") or rng.random() < 0.85):
                    speaker = other_of(speaker)
                text = small_talk(rng, previous, other_of(speaker), start)
            memory = {"key": f"{user.uid}-s{s + 1:02d}-t{t + 1:02d}",
                      "session": f"{user.uid}-s{s + 1:02d}", "speaker": speaker,
                      "text": f"{speaker}: {text}",
                      "created_at": when.strftime("%Y-%m-%dT%H:%M:%SZ")}
            memories.append(memory)
            turns.append((memory, fact, s))
            if fact is not None:
                fact.memory = memory
            when += timedelta(minutes=rng.choice([1, 2]))

    questions = []
    for fact in facts:
        if fact.question is None:
            continue
        kind, template, answer, stale = fact.question
        values = dict(fact.values, spk=fact.speaker)
        questions.append({"user_id": user.uid, "question": fill(template, values),
                          "answers": [fact.memory["key"]], "kind": kind, "stale": stale,
                          "_fact": fact, "_answer_value": fact.values[answer]})
    questions.sort(key=lambda q: q["answers"][0])
    return user, memories, turns, questions, n_sessions


def occurs(token, text):
    return re.search(r"(?<![A-Za-z0-9])" + re.escape(token) + r"(?![A-Za-z0-9])", text,
                     re.IGNORECASE) is not None


def check(users, all_questions):
    """Assert every rule of the brief; return the summary counts."""
    pairs = sum(len(entry[1]) for entry in PARAPHRASE)
    assert pairs >= 60, pairs
    assert not set(SPEAKERS) & set(FEMALE_NAMES + MALE_NAMES + RARE_GIVEN)
    assert len(users) >= N_USERS
    n_memories = sum(len(u[1]) for u in users)
    assert n_memories >= 5000, n_memories
    texts = [m["text"] for u in users for m in u[1]]
    duplicates = len(texts) - len(set(texts))
    assert duplicates / len(texts) < 0.02, duplicates
    assert len(all_questions) >= 500
    for user, memories, turns, questions, n_sessions in users:
        names = {n.lower() for n in user.speakers}
        assert len(set(user.speakers)) == 2
        assert 420 <= len(memories) <= 460, len(memories)
        assert 30 <= n_sessions <= 40
        small = sum(1 for _, fact, _ in turns if fact is None)
        assert 0.55 <= small / len(memories) <= 0.65, small / len(memories)
        by_session = {}
        for memory, fact, s in turns:
            assert memory["text"].startswith(memory["speaker"] + ": ")
            assert "{" not in memory["text"] and "}" not in memory["text"]
            if fact is None:
                assert not re.search(r"\d", memory["text"]), memory["text"]
            by_session.setdefault(s, []).append(memory)
        assert len(by_session) == n_sessions
        last = None
        for s in range(n_sessions):
            session = by_session[s]
            assert 8 <= len(session) <= 18
            times = [datetime.strptime(m["created_at"], "%Y-%m-%dT%H:%M:%SZ") for m in session]
            for x, y in zip(times, times[1:]):
                assert timedelta(minutes=1) <= y - x <= timedelta(minutes=2)
            if last is not None:
                assert timedelta(days=1) <= times[0] - last <= timedelta(days=28), (times[0], last)
            last = times[-1]
            assert times[0].year == 2026 and times[-1].year == 2026
        first = datetime.strptime(memories[0]["created_at"], "%Y-%m-%dT%H:%M:%SZ")
        assert first.month == 1 and last.month == 9 and (last - first).days >= 250
        assert len(questions) >= 40
        assert len({q["question"] for q in questions}) == len(questions)
        assert len({q["answers"][0] for q in questions}) == len(questions)
        for q in questions:
            fact, value = q["_fact"], q["_answer_value"]
            answer = fact.memory["text"]
            others = [m["text"] for m, _, _ in turns if m is not fact.memory]
            assert q["user_id"] == user.uid and len(q["answers"]) == 1
            assert occurs(value, answer) and not occurs(value, q["question"]), (value, q)
            qw, aw = content_words(q["question"], names), content_words(answer, names)
            if q["kind"] == "exact":
                token = fact.values[fact.group["token"]]
                assert occurs(token, q["question"]) and occurs(token, answer)
                assert not any(occurs(token, t) for t in others), token
                siblings = [f for _, f, _ in turns if f is not None and f.group is fact.group]
                assert len(siblings) >= 4
            elif q["kind"] == "paraphrase":
                assert not qw & aw, (q["question"], answer, qw & aw)
            else:
                assert q["kind"] == "mixed"
                assert qw & aw and qw - aw, (q["question"], answer, qw, aw)
            if q["stale"]:
                assert fact.session < n_sessions // 3
                later = [e for e in fact.echoes if e.session > fact.session]
                assert len(later) >= 3
                for echo in later:
                    assert content_words(echo.memory["text"], names) & aw, echo.memory["text"]
                    assert not occurs(value, echo.memory["text"]), (value, echo.memory["text"])
    counts = {k: sum(1 for q in all_questions if q["kind"] == k)
              for k in ("exact", "paraphrase", "mixed")}
    assert counts["exact"] * 3 >= len(all_questions), counts
    assert counts["paraphrase"] * 3 >= len(all_questions), counts
    stale = sum(1 for q in all_questions if q["stale"])
    assert stale >= 60, stale
    return n_memories, counts, stale, duplicates


def main():
    rng = random.Random(SEED)
    speakers = rng.sample(SPEAKERS, 2 * N_USERS)
    users = [build_user(rng, i, speakers[2 * i: 2 * i + 2]) for i in range(N_USERS)]
    all_questions = [q for u in users for q in u[3]]
    n_memories, counts, stale, duplicates = check(users, all_questions)
    about = (
        "Held-in recall evaluation for hippo. Twelve synthetic chat histories between two "
        "people (one user_id each, 30-40 sessions from January to September 2026); every turn "
        "is a memory, most of them small talk. Each question is answered by one turn of the "
        "same user (answers = its key). kind 'exact': the question holds a rare name, number or "
        "code found only in the answer turn, among look-alike turns with other tokens; "
        "'paraphrase': no content word shared with the answer; 'mixed': some shared. "
        "stale=true: the answer is early and later turns discuss the same topic without "
        "answering. Generated by generate.py from the seed; all text written for this project "
        "(Apache-2.0).")
    out = {
        "about": about,
        "seed": SEED,
        "users": [{"user_id": u.uid, "speakers": u.speakers, "memories": memories}
                  for u, memories, _, _, _ in users],
        "questions": [{k: v for k, v in q.items() if not k.startswith("_")}
                      for q in all_questions],
    }
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"users={len(users)} memories={n_memories} questions={len(all_questions)} "
          f"exact={counts['exact']} paraphrase={counts['paraphrase']} mixed={counts['mixed']} "
          f"stale={stale} duplicate_texts={duplicates}")


if __name__ == "__main__":
    main()
