import pytest
from walstream.testing import WALBackendContract, WALBackendSpec


class TestWoodpeckerContract(WALBackendContract):
    @pytest.fixture
    def wal_backend(self, tmp_path) -> WALBackendSpec:
        return WALBackendSpec(name="woodpecker", settings={"root": str(tmp_path / "wal")})
