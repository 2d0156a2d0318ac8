"""Word banks for the synthetic Amazon-2023 dataset: category vocabularies for item metadata, and
rating-graded review phrases whose VADER sentiment rises with the star rating (so the polarity of
GLoM §3.3 has a real text signal to recover)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Category:
    name: str
    main_category: str
    nouns: tuple[str, ...]
    adjectives: tuple[str, ...]
    features: tuple[str, ...]
    stores: tuple[str, ...]
    price: tuple[float, float]
    aspects: tuple[str, ...]


CATEGORIES: tuple[Category, ...] = (
    Category("Science Fiction", "Books", ("novel", "space opera", "anthology", "trilogy box set"),
             ("Galactic", "Starbound", "Quantum", "Orbital"), ("Paperback edition", "Includes author interview", "Large print available"),
             ("Nebula Press", "Orbit House"), (6.0, 30.0), ("world building", "plot", "characters", "pacing")),
    Category("Mystery & Thriller", "Books", ("detective novel", "thriller", "crime story", "whodunit"),
             ("Midnight", "Silent", "Hidden", "Cold Case"), ("Hardcover edition", "Book one of a series", "Reading group guide"),
             ("Blackwood Books", "Inkwell Press"), (5.0, 28.0), ("twists", "suspense", "ending", "narration")),
    Category("Cookbooks", "Books", ("cookbook", "recipe collection", "baking guide", "meal prep book"),
             ("Everyday", "Rustic", "Plant-Based", "Weeknight"), ("Over 100 recipes", "Full color photos", "Spiral bound"),
             ("Hearth Publishing", "Saffron Books"), (12.0, 40.0), ("recipes", "instructions", "photos", "ingredients")),
    Category("Action Movies", "Movies & TV", ("Blu-ray", "DVD", "4K movie", "action box set"),
             ("Explosive", "Rogue", "Final Strike", "Iron"), ("Widescreen", "Director's cut", "Bonus features"),
             ("Summit Studios", "Redline Pictures"), (8.0, 35.0), ("action scenes", "stunts", "picture quality", "story")),
    Category("Documentaries", "Movies & TV", ("documentary", "nature series", "history series", "docuseries"),
             ("Wild", "Untold", "Ancient", "Planet"), ("Narrated edition", "Three disc set", "Subtitles included"),
             ("Horizon Films", "Atlas Media"), (10.0, 45.0), ("narration", "footage", "research", "cinematography")),
    Category("Headphones", "Electronics", ("wireless headphones", "earbuds", "studio headphones", "noise cancelling headset"),
             ("Pro", "Bass", "Air", "Studio"), ("Bluetooth 5.3", "30 hour battery", "Active noise cancellation", "USB-C charging"),
             ("SoundPeak", "Auralis"), (25.0, 250.0), ("sound quality", "battery life", "comfort", "bass")),
    Category("Computer Accessories", "Electronics", ("mechanical keyboard", "wireless mouse", "USB hub", "laptop stand"),
             ("Ergo", "Swift", "Compact", "Ultra"), ("Plug and play", "RGB backlight", "Aluminum body", "Works with Mac and PC"),
             ("Keyforge", "Nexus Tech"), (15.0, 120.0), ("build quality", "keys", "connection", "setup")),
    Category("Cameras", "Electronics", ("action camera", "mirrorless camera", "camera lens", "tripod"),
             ("Vista", "Clear", "Snap", "Horizon"), ("4K video", "Image stabilization", "Weather sealed", "Includes carrying case"),
             ("Lumen Optics", "Framewise"), (40.0, 900.0), ("image quality", "autofocus", "battery", "lens")),
    Category("Car Care", "Automotive", ("car wax", "microfiber towel set", "wash kit", "tire shine"),
             ("Mirror", "Detailer", "Gloss", "Showroom"), ("Safe on clear coat", "Streak free", "Concentrated formula"),
             ("Autoglow", "ShineWorks"), (8.0, 50.0), ("shine", "finish", "scent", "application")),
    Category("Car Electronics", "Automotive", ("dash cam", "car charger", "backup camera", "phone mount"),
             ("Road", "Drive", "Guardian", "Trek"), ("Night vision", "Loop recording", "Fast charging", "Easy install"),
             ("DriveSense", "Motiv"), (12.0, 180.0), ("video quality", "mount", "installation", "wiring")),
    Category("Cookware", "Home & Kitchen", ("skillet", "saucepan", "dutch oven", "cookware set"),
             ("Cast Iron", "Nonstick", "Stainless", "Chef's"), ("Oven safe to 500F", "Dishwasher safe", "Induction compatible"),
             ("Copperline", "Hearthstone"), (20.0, 200.0), ("heat distribution", "handle", "coating", "cleanup")),
    Category("Bedding", "Home & Kitchen", ("sheet set", "duvet cover", "pillow", "weighted blanket"),
             ("Cloud", "Cozy", "Silky", "Dreamy"), ("100% cotton", "Deep pockets", "Machine washable", "Hypoallergenic"),
             ("Restwell", "Linen Lane"), (18.0, 150.0), ("softness", "fit", "stitching", "warmth")),
    Category("Camping", "Sports & Outdoors", ("tent", "sleeping bag", "camp stove", "hiking backpack"),
             ("Trail", "Summit", "Backcountry", "Ridge"), ("Waterproof", "Ultralight", "Three season", "Compression sack"),
             ("Pinecrest Outfitters", "Trailborn"), (25.0, 300.0), ("durability", "weight", "setup", "zippers")),
    Category("Fitness", "Sports & Outdoors", ("yoga mat", "resistance bands", "adjustable dumbbells", "jump rope"),
             ("Core", "Flex", "Power", "Active"), ("Non slip", "Includes carry strap", "Five resistance levels"),
             ("FitForge", "Motion Lab"), (10.0, 250.0), ("grip", "thickness", "resistance", "workouts")),
    Category("Board Games", "Toys & Games", ("board game", "strategy game", "card game", "party game"),
             ("Epic", "Clever", "Legendary", "Family"), ("2 to 6 players", "Ages 10 and up", "60 minute play time"),
             ("Meeple Works", "Tabletop Forge"), (15.0, 80.0), ("rules", "components", "replay value", "artwork")),
    Category("Building Toys", "Toys & Games", ("building set", "construction kit", "magnetic tiles", "robot kit"),
             ("Creative", "Mega", "Builder's", "Junior"), ("500 pieces", "Compatible with major brands", "STEM learning"),
             ("Brickhaus", "Tinker Toys Co"), (12.0, 120.0), ("pieces", "instructions", "fun", "quality")),
    Category("Skin Care", "Beauty & Personal Care", ("moisturizer", "serum", "sunscreen", "face cleanser"),
             ("Hydrating", "Radiant", "Gentle", "Daily"), ("Fragrance free", "SPF 50", "For sensitive skin", "Vegan formula"),
             ("Glowlab", "Purely Botanic"), (8.0, 70.0), ("texture", "scent", "absorption", "results")),
    Category("Hair Care", "Beauty & Personal Care", ("shampoo", "conditioner", "hair dryer", "styling cream"),
             ("Silk", "Volume", "Repair", "Salon"), ("Sulfate free", "Ionic technology", "For curly hair"),
             ("Tresswell", "Mane Street"), (7.0, 90.0), ("lather", "smell", "frizz control", "shine")),
    Category("Jazz", "Digital Music", ("jazz album", "live recording", "quartet album", "vinyl record"),
             ("Blue", "Midnight", "Smoky", "Late Night"), ("Remastered", "180 gram vinyl", "Bonus tracks"),
             ("Bluenote Alley", "Velvet Records"), (9.0, 40.0), ("saxophone", "arrangements", "recording", "rhythm section")),
    Category("Metal", "Digital Music", ("metal album", "live album", "EP", "deluxe edition"),
             ("Iron", "Thunder", "Dark", "Molten"), ("Remastered", "Includes live DVD", "Limited edition"),
             ("Forge Records", "Black Anvil"), (9.0, 35.0), ("riffs", "vocals", "production", "drumming")),
    Category("Dog Supplies", "Pet Supplies", ("dog bed", "chew toy", "leash", "dog food bowl"),
             ("Tough", "Comfy", "Happy Tail", "Rugged"), ("Machine washable", "Non toxic", "For large breeds"),
             ("Pawsome", "Barkside"), (8.0, 90.0), ("durability", "size", "materials", "my dog's reaction")),
    Category("Gardening", "Patio, Lawn & Garden", ("pruning shears", "garden hose", "raised bed", "seed starter kit"),
             ("Green", "Heirloom", "Evergreen", "Harvest"), ("Rust resistant", "Expandable", "Includes 50 seed pods"),
             ("Greenthumb Co", "Rootstock"), (10.0, 120.0), ("blades", "build", "water flow", "germination")),
    Category("Office Supplies", "Office Products", ("fountain pen", "planner", "desk organizer", "label maker"),
             ("Classic", "Executive", "Minimal", "Smart"), ("Refillable", "Undated pages", "Bamboo finish"),
             ("Paperwise", "Deskcraft"), (6.0, 60.0), ("ink flow", "paper", "layout", "sturdiness")),
    Category("Video Games", "Video Games", ("RPG", "racing game", "controller", "gaming headset"),
             ("Legend of", "Turbo", "Shadow", "Pixel"), ("Online multiplayer", "Wireless", "Includes DLC"),
             ("Quest Interactive", "Arcadia Games"), (20.0, 70.0), ("gameplay", "graphics", "controls", "story")),
)

# Review phrases graded by star rating (index 0 = 1 star). {noun} and {aspect} are the item's words.
OPENERS: tuple[tuple[str, ...], ...] = (
    ("Terrible purchase.", "Awful, I regret buying this.", "Very disappointed.", "Worst {noun} I have owned."),
    ("Disappointing.", "Not good at all.", "Poor quality, sadly.", "I expected much better."),
    ("It is okay.", "Decent, nothing special.", "Average {noun}.", "Mixed feelings about this one."),
    ("Really good {noun}.", "Very nice, I like it.", "Solid choice.", "Happy with this purchase."),
    ("Absolutely love this {noun}!", "Excellent, simply wonderful.", "Fantastic purchase!", "Best {noun} I have ever had!"),
)
MIDDLES: tuple[tuple[str, ...], ...] = (
    ("The {aspect} is horrible and it broke quickly.", "The {aspect} was awful, a complete waste of money.",
     "Bad {aspect}, cheap and useless."),
    ("The {aspect} is weak and a bit annoying.", "The {aspect} disappointed me.", "Problems with the {aspect} from day one."),
    ("The {aspect} is fine but could be better.", "The {aspect} is acceptable for the price.", "The {aspect} is neither good nor bad."),
    ("The {aspect} is good and it works well.", "Nice {aspect}, pleased overall.", "The {aspect} is great for everyday use."),
    ("The {aspect} is amazing and perfect.", "Outstanding {aspect}, I am thrilled.", "The {aspect} is brilliant, a real joy."),
)
CLOSERS: tuple[tuple[str, ...], ...] = (
    ("Returned it. Avoid.", "Do not buy.", "Never again."),
    ("Would not recommend.", "Probably returning it.", "Not worth it."),
    ("It does the job.", "Might buy again on sale.", "Fair enough."),
    ("Would recommend.", "Good value.", "Glad I bought it."),
    ("Highly recommend!", "Love it, five stars!", "Great value, would buy again!"),
)
REVIEW_TITLES: tuple[tuple[str, ...], ...] = (
    ("Terrible", "Waste of money", "Awful"),
    ("Disappointed", "Not great", "Meh, poor"),
    ("Okay", "Average", "It's fine"),
    ("Good", "Nice product", "Pretty good"),
    ("Excellent!", "Love it", "Five stars"),
)
TITLE_SUFFIXES: tuple[str, ...] = ("", " - Deluxe", " (2nd Edition)", " Plus", " - Classic", " Pro Series", " Mini", " XL")
