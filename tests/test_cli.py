from memunlearn.cli import main
from memunlearn.unlearning import METHODS


def test_list_prints_every_registry(capsys):
    main(["list"])
    out = capsys.readouterr().out
    for heading in ("datasets", "models", "proxies", "unlearning methods", "strategies"):
        assert heading in out
    for name in METHODS.names() + ["mnist_embedded", "small_cnn", "confidence", "rum"]:
        assert f"  {name}" in out
