"""Vectorised helix and straight-line geometry in a solenoid field along +z.

Conventions as the LCIO/EDM4hep track parametrisation (Marlin `HelixClass`): omega = q / R [1/mm] with
R = pT / (C B) the radius of curvature, phi the momentum direction at the point of closest approach (PCA) to
the reference point, D0 = signed transverse distance of the PCA, Z0 its z, tanLambda = pz / pT. A positive
particle turns clockwise seen from +z (h = -1 below), a negative one counter-clockwise.
"""

from __future__ import annotations

import numpy as np

from mlpf.sim import constants as C

TWO_PI = 2.0 * np.pi


def wrap_angle(phi: np.ndarray) -> np.ndarray:
    """Map angles to [-pi, pi)."""
    return (phi + np.pi) % TWO_PI - np.pi


class Helix:
    """Helices (or straight lines for neutral particles) starting at (x0, y0, z0) with momentum p."""

    def __init__(self, x0, y0, z0, px, py, pz, charge, b_field: float = C.B_FIELD_T) -> None:
        self.x0, self.y0, self.z0 = (np.asarray(v, dtype=np.float64) for v in (x0, y0, z0))
        px, py, pz = (np.asarray(v, dtype=np.float64) for v in (px, py, pz))
        self.pt = np.hypot(px, py)
        self.pz = pz
        self.charge = np.asarray(charge, dtype=np.float64)
        self.charged = self.charge != 0
        safe_pt = np.where(self.pt > 0, self.pt, 1e-12)
        self.radius = np.where(self.charged, safe_pt / (C.C_LIGHT_GEV * b_field), np.inf)
        self.h = -np.sign(self.charge)  # turning direction of the angle around the centre
        self.phi_m = np.arctan2(py, px)
        self.tan_lambda = pz / safe_pt
        r = np.where(self.charged, self.radius, 0.0)
        self.xc = self.x0 + r * np.cos(self.phi_m + self.h * np.pi / 2)
        self.yc = self.y0 + r * np.sin(self.phi_m + self.h * np.pi / 2)
        self.beta0 = self.phi_m - self.h * np.pi / 2
        pmag = np.sqrt(self.pt**2 + pz**2)
        self.ux, self.uy, self.uz = (
            px / np.where(pmag > 0, pmag, 1),
            py / np.where(pmag > 0, pmag, 1),
            pz / np.where(pmag > 0, pmag, 1),
        )

    # --- positions -----------------------------------------------------------------------------------------
    def at(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Position and momentum direction phi after path parameter s.

        For charged particles s is the turning angle alpha (rad); for neutral ones the path length (mm).
        """
        s = np.asarray(s, dtype=np.float64)
        beta = self.beta0 + self.h * s
        r = np.where(self.charged, self.radius, 0.0)
        xh = self.xc + r * np.cos(beta)
        yh = self.yc + r * np.sin(beta)
        zh = self.z0 + r * s * self.tan_lambda
        xs = self.x0 + s * self.ux
        ys = self.y0 + s * self.uy
        zs = self.z0 + s * self.uz
        x = np.where(self.charged, xh, xs)
        y = np.where(self.charged, yh, ys)
        z = np.where(self.charged, zh, zs)
        phi = np.where(self.charged, wrap_angle(self.phi_m + self.h * s), self.phi_m)
        return x, y, z, phi

    def to_cylinder(self, radius) -> np.ndarray:
        """Smallest s >= 0 at which the trajectory reaches transverse radius `radius` (inf if never).

        `radius` broadcasts against the particles (e.g. shape (n, 1) particles x (layers,) radii).
        """
        radius = np.asarray(radius, dtype=np.float64)
        # charged: |centre + R e(beta)| = radius
        d = np.hypot(self.xc, self.yc)
        rr = np.where(self.charged, self.radius, 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            cos_psi = (radius**2 - d**2 - rr**2) / (2 * d * rr)
        gamma = np.arctan2(self.yc, self.xc)
        psi = np.arccos(np.clip(cos_psi, -1, 1))
        a1 = ((gamma + psi - self.beta0) * self.h) % TWO_PI
        a2 = ((gamma - psi - self.beta0) * self.h) % TWO_PI
        s_charged = np.where(np.abs(cos_psi) <= 1, np.minimum(a1, a2), np.inf)
        # neutral: |p0 + s u| = radius
        ut2 = self.ux**2 + self.uy**2
        b = self.x0 * self.ux + self.y0 * self.uy
        c = self.x0**2 + self.y0**2 - radius**2
        with np.errstate(divide="ignore", invalid="ignore"):
            disc = b**2 - ut2 * c
            s_neutral = np.where((disc >= 0) & (ut2 > 0), (-b + np.sqrt(np.maximum(disc, 0))) / ut2, np.inf)
        s_neutral = np.where(s_neutral >= 0, s_neutral, np.inf)
        r0 = np.hypot(self.x0, self.y0)
        s = np.where(self.charged, s_charged, s_neutral)
        return np.where(r0 >= radius, np.inf, s)

    def to_plane(self, z_abs) -> np.ndarray:
        """Smallest s >= 0 at which the trajectory reaches |z| = z_abs on the side it moves to (inf if never)."""
        z_abs = np.asarray(z_abs, dtype=np.float64)
        target = np.sign(self.pz) * z_abs
        with np.errstate(divide="ignore", invalid="ignore"):
            s_charged = (target - self.z0) / (self.radius * self.tan_lambda)
            s_neutral = (target - self.z0) / self.uz
        s = np.where(self.charged, s_charged, s_neutral)
        ok = (self.pz != 0) & np.isfinite(s) & (s >= 0) & (np.abs(self.z0) < z_abs)
        return np.where(ok, s, np.inf)

    def to_box(self, r_barrel: float, z_endcap: float) -> tuple[np.ndarray, np.ndarray]:
        """Path parameter to the inner surface of a barrel+endcap system, and whether it is the barrel."""
        sb = self.to_cylinder(r_barrel)
        se = self.to_plane(z_endcap)
        barrel = sb <= se
        return np.where(barrel, sb, se), barrel & np.isfinite(sb)

    def path_length(self, s: np.ndarray) -> np.ndarray:
        """3D path length travelled for path parameter s."""
        r = np.where(self.charged, self.radius, 0.0)
        return np.where(self.charged, r * s * np.sqrt(1 + self.tan_lambda**2), s)

    # --- perigee parameters --------------------------------------------------------------------------------
    def perigee(self) -> dict[str, np.ndarray]:
        """Track parameters at the PCA to the z axis (reference point (0, 0, 0)), HelixClass conventions."""
        phi_pca = np.arctan2(-self.yc, -self.xc)
        x_pca = self.xc + self.radius * np.cos(phi_pca)
        y_pca = self.yc + self.radius * np.sin(phi_pca)
        phi0 = wrap_angle(phi_pca + self.h * np.pi / 2)
        d0 = -x_pca * np.sin(phi0) + y_pca * np.cos(phi0)
        alpha = wrap_angle((phi_pca - self.beta0) * self.h)
        z0 = self.z0 + self.radius * alpha * self.tan_lambda
        omega = self.charge / self.radius
        return {"D0": d0, "phi": phi0, "omega": omega, "Z0": z0, "tanLambda": self.tan_lambda}
