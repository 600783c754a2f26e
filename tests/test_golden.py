"""Golden values (issue 14, item 7): the LiRA forgetting-quality score and the SVC MIA on fixed arrays, against
numbers computed ONCE with the reference implementations outside this project. Only the numbers live here.

How they were obtained (CPU; torch 2.14.1, numpy 2.4.6, scikit-learn 1.9.1, as in this project's environment):
- LiRA: google-deepmind/unlearning_evaluation, ``metric.py`` at commit ffae0ff
  (``compute_forget_score_from_confs``, its ``_get_epsilons`` with the median rule for the positive class,
  ``compute_logit_scaled_confidence``), called on UNLEARNED/RETRAINED below. Two shims, neither touching the
  arithmetic: ``torch.Tensor.cuda`` made a no-op (the code only moves tensors to the GPU), and
  ``assert thr_eps`` read as ``assert len(thr_eps)`` (as written it raises "truth value of an array ... is
  ambiguous" whenever more than one threshold survives).
- SVC MIA: OPTML-Group/Unlearn-Saliency, ``Classification/evaluation/SVC_MIA.py`` (``SVC_fit_predict``:
  ``SVC(C=3, gamma='auto', kernel='rbf')`` fit on shadow_train = members (label 1) vs shadow_test =
  non-members (label 0); with target_train=None and target_test=F, efficacy = 1 − mean(predict(F)), the
  fraction of F predicted non-member), with its features: correctness, confidence (p_y; ``true_prob``
  here), ``entropy`` and the probability vector. Members = RETAIN, non-members = TEST (equal sizes, so this
  project's balanced subsample takes every row), target = FORGET.
The inputs were drawn once from numpy's default_rng(2024) and rounded (2 decimals for confidences, 4 for
probabilities); they are written out below, so the test never depends on a random stream.
Not covered: modified entropy, whose reference copy is buggy (``modified_probs[:, labels]`` indexes columns
by the label vector, and it takes log p where Song & Mittal take log(1 − p)); it is checked against Song &
Mittal's formula instead.
"""
import numpy as np
import pytest

from memunlearn.evaluation.lira import forget_score, logit_scaled_confidence
from memunlearn.evaluation.mia import MIA_FEATURES, svc_mia

# confidences (models, examples): 8 models, 10 forget examples
RETRAINED = np.array([
    [1.03, 1.64, 1.15, -0.97, -1.39, 0.07, 0.86, 0.51, 1.81, 0.75],
    [0.64, -0.73, -1.11, 1.48, 0.05, 0.81, -1.38, -0.44, -1.29, -0.78],
    [0.90, -1.48, -0.53, 0.16, -0.67, -0.25, -0.22, 0.42, -0.43, 0.27],
    [0.06, 0.42, 0.22, 1.66, -0.66, 1.20, -0.40, -0.96, 1.21, -0.44],
    [-0.39, -1.39, -2.10, 0.63, -1.17, 0.78, 1.85, -0.11, -1.13, 0.39],
    [0.76, -0.26, 0.02, 1.34, 1.27, 0.71, -0.87, -0.05, 0.60, -0.21],
    [-0.61, -0.77, -0.63, -0.67, -0.45, 1.15, -0.80, 0.89, 0.42, 0.14],
    [-0.83, -0.46, 1.97, 0.10, 0.54, 0.66, 1.06, -0.24, -0.61, -0.06],
])
UNLEARNED = np.array([
    [-0.26, 1.09, 0.95, 1.79, 2.65, 4.61, -1.81, -3.48, 0.77, 5.89],
    [0.36, -0.43, 0.82, 2.02, 1.17, 3.65, -0.37, -0.75, 0.64, 5.94],
    [-0.85, 0.69, -1.20, 1.44, 2.17, 3.74, 2.48, -5.47, 0.49, 6.07],
    [0.47, -1.30, 0.43, -0.29, 2.37, 4.10, -0.75, -3.20, 0.56, 6.18],
    [0.41, 0.33, -0.63, 0.52, 2.85, 3.54, -2.20, -2.89, 0.49, 6.89],
    [0.51, -0.14, 0.89, -1.93, 1.70, 3.93, -4.58, -3.32, 0.58, 7.03],
    [0.40, 2.18, 2.02, -0.46, 2.27, 3.92, -0.86, -3.57, 0.68, 6.75],
    [-1.52, 1.25, 0.28, 2.77, 3.06, 3.93, 1.98, -2.11, 0.51, 6.25],
])

# reference outputs
REF_FORGET_SCORE = 0.125
REF_EPSILONS = [1.3862743377685547, 1.609421968460083, 1.609421968460083, 1.3862743377685547, 1.9458987712860107,
                50.0, 1.609421968460083, 1.9458987712860107, 1.9458987712860107, 50.0]
REF_LOGITS = np.array([[2.0, -1.0, 0.5], [-3.0, 4.0, 1.0], [0.0, 0.0, 0.0], [10.0, -5.0, 2.0]])
REF_LOGITS_LABELS = np.array([0, 0, 2, 0])
REF_CONFIDENCE = [1.2985867220172476, -7.048587351573742, -0.6931471805599454, 7.999088533546225]

RETAIN_P = np.array([
    [0.9790, 0.0181, 0.0028, 0.0001],
    [0.2071, 0.0395, 0.0000, 0.7534],
    [0.9208, 0.0008, 0.0134, 0.0650],
    [0.0036, 0.9953, 0.0011, 0.0000],
    [0.9634, 0.0366, 0.0001, 0.0000],
    [0.0009, 0.2908, 0.0031, 0.7052],
    [0.0111, 0.0715, 0.5702, 0.3472],
    [0.0000, 0.9998, 0.0000, 0.0002],
    [0.0001, 0.9997, 0.0000, 0.0001],
    [0.0048, 0.0019, 0.0466, 0.9467],
    [0.0175, 0.0010, 0.2754, 0.7061],
    [0.3109, 0.0007, 0.0085, 0.6798],
    [0.0201, 0.7243, 0.2523, 0.0033],
    [0.0001, 0.0111, 0.9888, 0.0000],
    [0.1604, 0.3338, 0.5051, 0.0007],
    [0.0263, 0.0006, 0.0703, 0.9027],
    [0.0072, 0.0470, 0.6036, 0.3422],
    [0.0003, 0.9644, 0.0279, 0.0075],
    [0.0148, 0.2070, 0.7781, 0.0001],
    [0.0029, 0.0001, 0.5556, 0.4414],
    [0.0003, 0.0000, 0.2380, 0.7617],
    [0.9915, 0.0022, 0.0032, 0.0031],
    [0.0217, 0.0003, 0.0033, 0.9747],
    [0.0009, 0.0001, 0.0003, 0.9986],
    [0.8198, 0.1759, 0.0043, 0.0000],
    [0.0292, 0.0037, 0.1604, 0.8067],
    [0.0003, 0.9860, 0.0064, 0.0072],
    [0.0431, 0.1911, 0.5847, 0.1810],
    [0.0001, 0.0001, 0.9997, 0.0001],
    [0.0001, 0.0000, 0.0000, 0.9999],
    [0.0018, 0.0002, 0.3360, 0.6620],
    [0.0242, 0.0085, 0.0068, 0.9605],
    [0.0748, 0.8956, 0.0247, 0.0050],
    [0.0766, 0.0048, 0.6665, 0.2520],
    [0.5951, 0.3928, 0.0120, 0.0001],
    [0.5841, 0.2817, 0.0002, 0.1340],
    [0.5144, 0.2063, 0.2694, 0.0100],
    [0.1425, 0.2962, 0.5417, 0.0196],
    [0.7426, 0.0156, 0.0213, 0.2205],
    [0.4444, 0.0453, 0.3400, 0.1703],
])
RETAIN_Y = np.array([1, 0, 1, 2, 0, 3, 2, 1, 1, 3, 3, 3, 1, 2, 2, 3, 2, 1, 2, 2,
                     3, 0, 3, 3, 0, 3, 1, 2, 2, 3, 3, 3, 1, 2, 0, 0, 0, 2, 0, 0])
TEST_P = np.array([
    [0.1804, 0.4090, 0.3565, 0.0541],
    [0.1014, 0.2589, 0.0152, 0.6245],
    [0.5896, 0.2661, 0.0036, 0.1407],
    [0.0147, 0.9482, 0.0090, 0.0281],
    [0.8394, 0.0574, 0.0078, 0.0955],
    [0.5394, 0.0469, 0.0534, 0.3603],
    [0.0853, 0.5536, 0.3095, 0.0516],
    [0.0579, 0.8491, 0.0606, 0.0324],
    [0.3994, 0.0799, 0.0193, 0.5014],
    [0.7592, 0.0321, 0.1127, 0.0959],
    [0.3185, 0.2085, 0.0423, 0.4306],
    [0.0760, 0.1537, 0.3411, 0.4292],
    [0.5801, 0.0059, 0.0644, 0.3496],
    [0.1978, 0.0122, 0.0177, 0.7724],
    [0.0141, 0.3964, 0.2367, 0.3527],
    [0.0052, 0.0237, 0.0379, 0.9333],
    [0.6703, 0.0414, 0.0664, 0.2219],
    [0.9432, 0.0128, 0.0311, 0.0129],
    [0.7990, 0.0172, 0.1658, 0.0181],
    [0.2475, 0.5474, 0.0896, 0.1154],
    [0.5877, 0.0903, 0.2480, 0.0739],
    [0.0098, 0.0213, 0.9428, 0.0261],
    [0.0971, 0.5444, 0.1567, 0.2018],
    [0.8166, 0.1036, 0.0077, 0.0722],
    [0.0575, 0.0832, 0.7041, 0.1552],
    [0.2164, 0.1435, 0.4172, 0.2229],
    [0.0394, 0.0124, 0.0072, 0.9410],
    [0.7062, 0.1470, 0.0674, 0.0794],
    [0.0291, 0.1983, 0.2175, 0.5551],
    [0.0169, 0.0380, 0.0322, 0.9129],
    [0.1246, 0.1952, 0.5379, 0.1423],
    [0.3023, 0.1728, 0.2128, 0.3122],
    [0.0368, 0.0371, 0.9190, 0.0071],
    [0.0044, 0.1700, 0.7612, 0.0644],
    [0.1992, 0.6821, 0.0403, 0.0784],
    [0.0689, 0.0909, 0.1292, 0.7111],
    [0.7329, 0.2211, 0.0215, 0.0244],
    [0.1398, 0.2471, 0.5872, 0.0259],
    [0.0110, 0.7799, 0.1083, 0.1007],
    [0.0171, 0.6509, 0.3164, 0.0156],
])
TEST_Y = np.array([1, 2, 3, 1, 3, 0, 2, 3, 0, 3, 2, 1, 1, 0, 2, 1, 3, 1, 0, 3,
                   0, 1, 2, 3, 3, 1, 1, 2, 3, 3, 0, 2, 3, 2, 0, 3, 1, 3, 2, 1])
FORGET_P = np.array([
    [0.0133, 0.2286, 0.4905, 0.2676],
    [0.0081, 0.8962, 0.0072, 0.0886],
    [0.3307, 0.2388, 0.4294, 0.0010],
    [0.0001, 0.0474, 0.0626, 0.8900],
    [0.1438, 0.1687, 0.0060, 0.6815],
    [0.6093, 0.0062, 0.0539, 0.3306],
    [0.4515, 0.2433, 0.3052, 0.0000],
    [0.0007, 0.1806, 0.0011, 0.8177],
    [0.0252, 0.0021, 0.9518, 0.0210],
    [0.0120, 0.9013, 0.0799, 0.0068],
    [0.0008, 0.0002, 0.6853, 0.3137],
    [0.2136, 0.0343, 0.6372, 0.1150],
    [0.5247, 0.3539, 0.0847, 0.0367],
    [0.5971, 0.1326, 0.0021, 0.2682],
    [0.9702, 0.0042, 0.0209, 0.0047],
    [0.0053, 0.0012, 0.9849, 0.0085],
    [0.0241, 0.0497, 0.0290, 0.8973],
    [0.0353, 0.0268, 0.8168, 0.1211],
    [0.1467, 0.0067, 0.6821, 0.1645],
    [0.7981, 0.0035, 0.1509, 0.0475],
    [0.0028, 0.3843, 0.6054, 0.0074],
    [0.0512, 0.0005, 0.8875, 0.0609],
    [0.7057, 0.0132, 0.1568, 0.1242],
    [0.8580, 0.0806, 0.0470, 0.0144],
    [0.3081, 0.0229, 0.6674, 0.0016],
    [0.8535, 0.1078, 0.0346, 0.0040],
    [0.0178, 0.0431, 0.7078, 0.2313],
    [0.1082, 0.3868, 0.1916, 0.3134],
    [0.0145, 0.0012, 0.5463, 0.4379],
    [0.0000, 0.0016, 0.9291, 0.0692],
])
FORGET_Y = np.array([2, 3, 1, 2, 2, 0, 2, 3, 1, 1, 1, 3, 0, 2, 3,
                     1, 2, 0, 3, 2, 3, 2, 2, 3, 2, 0, 3, 2, 2, 0])
REF_MIA = {"correctness": 0.7, "true_prob": 0.7, "entropy": 0.6, "prob_vector": 0.4}  # fractions of 30


def test_lira_forget_score_matches_the_reference():
    score, eps, points = forget_score(UNLEARNED, RETRAINED)
    # the reference computes rates in float32: epsilons agree to float32 precision, far from any bucket edge
    np.testing.assert_allclose(eps, REF_EPSILONS, rtol=1e-5)
    assert score == REF_FORGET_SCORE
    assert points.tolist() == [0.25, 0.125, 0.125, 0.25, 0.125, 0.0, 0.125, 0.125, 0.125, 0.0]


def test_logit_scaled_confidence_matches_the_reference():
    np.testing.assert_allclose(logit_scaled_confidence(REF_LOGITS, REF_LOGITS_LABELS), REF_CONFIDENCE, rtol=1e-12)


@pytest.mark.parametrize("feature", sorted(REF_MIA))
def test_svc_mia_matches_the_reference(feature):
    got = svc_mia((RETAIN_P, RETAIN_Y), (TEST_P, TEST_Y), (FORGET_P, FORGET_Y), feature, seed=0)
    assert got == pytest.approx(REF_MIA[feature], abs=1e-12)


def test_modified_entropy_is_song_and_mittal():
    """Mentr(p, y) = −(1 − p_y) log p_y − Σ_{c≠y} p_c log(1 − p_c), by hand for one row."""
    p = np.array([[0.7, 0.2, 0.1]])
    want = -(0.3 * np.log(0.7)) - (0.2 * np.log(0.8) + 0.1 * np.log(0.9))
    assert MIA_FEATURES.get("modified_entropy")(p, np.array([0]))[0, 0] == pytest.approx(want, rel=1e-12)
