"""Published numbers to print beside ours (Ye et al. 2024, Taxi1500 macro-F1, bert-base-cased)."""

PAPER_TAXI1500 = {
    "paper LR (target-supervised)": {"de": .30, "es": .32, "zh": .56, "mt": .38, "sah": .48, "fo": .47, "nds": .18, "tt": .43},
    "paper mBERT zero-shot": {"de": .24, "es": .60, "zh": .62, "mt": .08, "sah": .07, "fo": .18, "nds": .12, "tt": .18},
    "paper LS": {"de": .14, "es": .26, "zh": .24, "mt": .08, "sah": .12, "fo": .06, "nds": .08, "tt": .07},
    "paper RR standard top-50": {"de": .20, "es": .44, "zh": .28, "mt": .14, "sah": .16, "fo": .16, "nds": .06, "tt": .14},
    "paper RR softmax top-50": {"de": .20, "es": .48, "zh": .28, "mt": .15, "sah": .19, "fo": .16, "nds": .06, "tt": .17},
    "paper RR sparsemax top-50": {"de": .24, "es": .37, "zh": .13, "mt": .15, "sah": .18, "fo": .20, "nds": .13, "tt": .21},
}
