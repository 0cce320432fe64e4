"""study.py: storages, identities, and what is fit to print of a storage URL."""

import pytest

from cifar_automl.errors import StudyError
from cifar_automl.study import open_storage, redact


@pytest.mark.parametrize("url, shown", [
    ("postgresql://bob:s3cret@db:5432/automl", "postgresql://bob:***@db:5432/automl"),
    ("postgresql://db/automl?user=bob&password=s3cret&sslmode=require",
     "postgresql://db/automl?user=bob&password=***&sslmode=require"),
    ("mysql+pymysql://bob:s3cret@db/automl?PASSWORD=x", "mysql+pymysql://bob:***@db/automl?PASSWORD=***"),
    ("postgresql://bob@db/automl", "postgresql://bob@db/automl"),
    ("sqlite:///studies/residual.db", "sqlite:///studies/residual.db"),
    ("studies/residual.log", "studies/residual.log"),
])
def test_passwords_are_never_shown(url, shown):
    assert redact(url) == shown


def test_a_storage_that_cannot_be_opened_is_one_line_without_its_password():
    with pytest.raises(StudyError) as err:
        open_storage("postgresql://bob:s3cret@127.0.0.1:1/none?password=s3cret")
    assert "s3cret" not in str(err.value) and "cannot open storage" in str(err.value)


@pytest.mark.parametrize("name", ["../elsewhere", "a/b", "..", "back\\slash", ""])
def test_a_study_name_that_is_not_a_folder_name_is_refused(tmp_path, name):
    from cifar_automl.study import load_existing_study

    with pytest.raises(StudyError, match="cannot be a folder name"):
        load_existing_study(name, studies_dir=tmp_path)
