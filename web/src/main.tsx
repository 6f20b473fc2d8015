import { render } from 'preact';
import { LocationProvider, Router, Route, useLocation } from 'preact-iso';
import { session } from './api/session';
import { useSession } from './lib/hooks';
import './style.css';
import { CatalogPage, CoursePage } from './pages/catalog';
import { LoginPage, RegisterPage, VerifyEmailPage, ForgotPasswordPage, ResetPasswordPage, ConfirmEmailChangePage } from './pages/auth';
import { CheckoutSuccessPage, CheckoutCancelPage, OrdersPage } from './pages/orders';
import { MyLearningPage } from './pages/learning';
import { PlayerPage } from './pages/player';
import { AccountPage } from './pages/account';
import { StudioPage, StudioCoursePage } from './pages/studio';
import { AdminPage } from './pages/admin';
import { Page, Loading } from './components';

function Header() {
  const s = useSession();
  const { route } = useLocation();
  const signOut = async () => {
    await s.logout();
    route('/');
  };
  return (
    <header class="top">
      <a class="skip" href="#main">
        Skip to content
      </a>
      <a class="brand" href="/">
        Triple Academy
      </a>
      <nav aria-label="Main">
        <a href="/">Courses</a>
        {s.user && <a href="/learning">My learning</a>}
        {s.user && <a href="/orders">Orders</a>}
        {(s.hasRole('instructor') || s.hasRole('admin')) && <a href="/studio">Studio</a>}
        {s.hasRole('admin') && <a href="/admin">Admin</a>}
        {s.user ? (
          <>
            <a href="/account">Account</a>
            <button type="button" class="link" onClick={signOut}>
              Sign out
            </button>
          </>
        ) : (
          <>
            <a href="/login">Sign in</a>
            <a href="/register">Register</a>
          </>
        )}
      </nav>
    </header>
  );
}

function NotFound() {
  return (
    <Page title="Page not found">
      <p>
        <a href="/">Back to the courses</a>
      </p>
    </Page>
  );
}

/** Pages that need a signed-in user send a visitor to the sign-in page and back. */
function RequireUser({ children }: { children: preact.ComponentChildren }) {
  const s = useSession();
  const { route, url } = useLocation();
  if (!s.ready) return <Loading />;
  if (!s.user) {
    route(`/login?next=${encodeURIComponent(url)}`, true);
    return null;
  }
  return <>{children}</>;
}

function guarded<P extends object>(Component: preact.ComponentType<P>) {
  return (props: P) => (
    <RequireUser>
      <Component {...props} />
    </RequireUser>
  );
}

const SignedCheckoutSuccessPage = guarded(CheckoutSuccessPage);
const SignedCheckoutCancelPage = guarded(CheckoutCancelPage);
const SignedMyLearningPage = guarded(MyLearningPage);
const SignedPlayerPage = guarded(PlayerPage);
const SignedOrdersPage = guarded(OrdersPage);
const SignedAccountPage = guarded(AccountPage);
const SignedStudioPage = guarded(StudioPage);
const SignedStudioCoursePage = guarded(StudioCoursePage);
const SignedAdminPage = guarded(AdminPage);

export function App() {
  return (
    <LocationProvider>
      <Header />
      <main id="main">
        <Router>
          <Route path="/" component={CatalogPage} />
          <Route path="/courses/:id" component={CoursePage} />
          <Route path="/login" component={LoginPage} />
          <Route path="/register" component={RegisterPage} />
          <Route path="/account/verify-email" component={VerifyEmailPage} />
          <Route path="/forgot-password" component={ForgotPasswordPage} />
          <Route path="/account/reset-password" component={ResetPasswordPage} />
          <Route path="/account/confirm-email-change" component={ConfirmEmailChangePage} />
          <Route path="/checkout/success" component={SignedCheckoutSuccessPage} />
          <Route path="/checkout/cancel" component={SignedCheckoutCancelPage} />
          <Route path="/learning" component={SignedMyLearningPage} />
          <Route path="/learn/:courseId/:lessonId" component={SignedPlayerPage} />
          <Route path="/orders" component={SignedOrdersPage} />
          <Route path="/account" component={SignedAccountPage} />
          <Route path="/studio" component={SignedStudioPage} />
          <Route path="/studio/courses/:id" component={SignedStudioCoursePage} />
          <Route path="/admin" component={SignedAdminPage} />
          <Route default component={NotFound} />
        </Router>
      </main>
    </LocationProvider>
  );
}

const root = document.getElementById('app');
if (root) {
  render(<App />, root);
  void session.restore();
}
